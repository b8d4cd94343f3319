#!/usr/bin/env python3
"""DSN causes not covered elsewhere: no connector matches (5.4.0), the
smart host is this server (5.3.5, loops back to myself), never a DSN for a
DSN, and a next hop that drops the connection (deferred with 4.4.2).

usage: meshnode_ndr.py MESHNODE MESHCTL MKORG SCHEMA
"""
import os
import smtplib
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodelib import check, done, last_error, maildir, node, sink, wait_for, workdir  # noqa

meshnode, meshctl, mkorg = sys.argv[1:4]
W = workdir("ndr")


def org(name, bind, *extra):
    path = os.path.join(W, name + ".ldif")
    subprocess.run([sys.executable, mkorg, path, "--bind", bind, "--relay", "127.0.0.0/8"] +
                   list(extra), check=True)
    spool = os.path.join(W, name)
    node(meshnode, path, "N1", spool, "--set", "retry_min_ms=60000")
    return spool


def dsn(spool, status, rcpt):
    for f in maildir(spool, "alice@example.test"):
        t = open(f).read()
        if "Status: " + status in t and rcpt in t:
            return True
    return False


def send(addr, sender, rcpt):
    host, port = addr.rsplit(":", 1)
    c = smtplib.SMTP(host, int(port))
    c.sendmail(sender, [rcpt], "Subject: t\r\n\r\nx\r\n")
    c.quit()


# no connector at all: nothing matches example.net
s4 = org("noroute", "127.0.20.1:2525")
send("127.0.20.1:2525", "alice@example.test", "x@example.net")
check(wait_for(lambda: dsn(s4, "5.4.0", "x@example.net")), "no matching connector: DSN 5.4.0")
send("127.0.20.1:2525", "", "y@example.net")
track = lambda: open(s4 + "/tracking.log").read()  # noqa: E731
check(wait_for(lambda: "NDR-SUPPRESSED" in track()), "a message from <> gets no DSN")
check(not dsn(s4, "5.4.0", "y@example.net"), "and nothing reached a mailbox for it")

# the smart host is this very server
s3 = org("self", "127.0.20.2:2525", "--smarthost", "127.0.20.2:2525")
send("127.0.20.2:2525", "alice@example.test", "x@example.net")
check(wait_for(lambda: dsn(s3, "5.3.5", "x@example.net")), "smart host is myself: DSN 5.3.5")

# the next hop hangs up after RCPT
sink("127.0.20.4:25250", W + "/dropper", "-q", "RCPT")
s5 = org("drop", "127.0.20.3:2525", "--smarthost", "127.0.20.4:25250")
send("127.0.20.3:2525", "alice@example.test", "x@example.net")


err = wait_for(lambda: last_error(meshctl, s5, "Internet"))
check(err is not None and err.startswith("4.4.2"), "connection dropped: deferred, %s" % err)


def fate(spool, rcpt):
    """The tracking log's lines that settle what became of rcpt: DEFERRED,
    or NDR had it been bounced (both are written when the attempt ends)."""
    try:
        lines = open(spool + "/tracking.log").read().splitlines()
    except FileNotFoundError:
        return []
    return [l.split()[1] for l in lines
            if "to=<%s>" % rcpt in l and l.split()[1] in ("DEFERRED", "NDR")]


f5 = wait_for(lambda: fate(s5, "x@example.net"))
check(f5 and "DEFERRED" in f5 and "NDR" not in f5 and not dsn(s5, "", "x@example.net"),
      "and not bounced: the tracking log says DEFERRED, no NDR, no DSN in the sender's box (%s)"
      % f5)

# a next hop that never answers the final dot: when the reply times out
# the node aborts the session (RST), so that nothing it wrote and the peer
# has not read yet can reach it later -- through a cut that heals, a
# graceful close would let the kernel deliver a message the node has
# already rerouted, and it would arrive twice (found by meshsim).
# (mutation: relay_client.c conn_end without SO_LINGER 0 -- the peer reads
# a clean end of stream: seen failing)
seen = {}


def mute_peer():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.20.6", 25260))
    ls.listen(1)
    ls.settimeout(60)
    c, _ = ls.accept()
    c.settimeout(60)
    f = c.makefile("rb")
    c.sendall(b"220 mute\r\n")
    while True:
        line = f.readline()
        if not line:
            seen["end"] = "closed before DATA"
            return
        verb = line[:4].upper()
        if verb in (b"EHLO", b"HELO"):
            c.sendall(b"250 mute\r\n")
        elif verb == b"DATA":
            c.sendall(b"354 go on\r\n")
            while f.readline() not in (b".\r\n", b""):
                pass
            break
        else:
            c.sendall(b"250 ok\r\n")
    try:  # the final dot read; no reply, ever: what does the node do?
        seen["end"] = "clean end of stream" if c.recv(1) == b"" else "more bytes"
    except ConnectionResetError:
        seen["end"] = "reset"
    c.close()
    ls.close()


t = threading.Thread(target=mute_peer, daemon=True)
t.start()
path = os.path.join(W, "mute.ldif")
subprocess.run([sys.executable, mkorg, path, "--bind", "127.0.20.5:2525", "--relay",
                "127.0.0.0/8", "--smarthost", "127.0.20.6:25260"], check=True)
node(meshnode, path, "N1", os.path.join(W, "mute"), "--set", "reply_timeout_s=2",
     "--set", "retry_min_ms=60000")
send("127.0.20.5:2525", "alice@example.test", "x@example.net")
t.join(60)
check(seen.get("end") == "reset",
      "a reply that never comes: the session is aborted, RST, not closed (%s)" % seen.get("end"))
done()
