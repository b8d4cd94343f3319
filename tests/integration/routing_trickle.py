#!/usr/bin/env python3
"""Peers that hold a node's 691 listener without saying anything whole
(127.0.94.x, mutual TLS with certificates from meshctl pki, the default
dead interval of 3 s): an admin's certificate that trickles the bytes of a
Hello it never ends, one that says Hello and then trickles a Query it
never ends, and one whose first frame announces 512 KiB. A connection is
kept alive by whole frames, not bytes (docs/protocol.md, "Liveness"), so
the first two are closed within one dead interval; the first frame is a
Hello, read up to 64 KiB, so the third is closed at once. A Query of 200
KiB after Hello is still read and answered.

Each check names, in "(mutation: ...)", the change to the code it was seen
to fail on.

usage: routing_trickle.py MESHNODE MESHCTL MKORG SCHEMA
"""
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import routing_lib as rl  # noqa: E402
from nodelib import check, done, node, wait_for, workdir  # noqa: E402

meshnode, meshctl = sys.argv[1:3]
W = workdir("rt-trickle")
N1 = "127.0.94.1"
R1 = N1 + ":6911"
ldif = os.path.join(W, "lab.ldif")
rl.org(ldif, N1 + ":2525", "127.0.94.3:25250", master="127.0.94.9:6910")
CA, T1 = W + "/ca", W + "/tls-n1"
for args in (["pki", "init", "--dir", CA, "--org", "Lab"],
             ["--directory", "ldif:" + ldif, "pki", "issue", "--dir", CA, "N1", "--admin", "ops"]):
    r = subprocess.run([meshctl] + args, capture_output=True, text=True)
    check(r.returncode == 0, "meshctl %s (%s)" % (args[0], r.stderr.strip()))
os.makedirs(T1)
for f in ("ca.pem", "N1.pem", "N1.key"):
    shutil.copy2(os.path.join(CA, f), T1)
DEAD = 3.0  # ping_interval_ms 1000 x dead_after 3, the defaults
n1 = node(meshnode, ldif, "N1", os.path.join(W, "n1"), "--tls", T1,
          "--set", "ping_interval_ms=1000", "--set", "dead_after=3")
log = os.path.join(W, "N1.log")


def tls():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(CA + "/ca.pem")
    ctx.check_hostname = False
    ctx.load_cert_chain(CA + "/ops.pem", CA + "/ops.key")
    return ctx


def gone(c, wait):
    """True when the node closes c within wait seconds (what it sends
    before, Pings, is read and dropped)."""
    c.s.settimeout(wait)
    try:
        while True:
            if not c.s.recv(65536):
                return True
    except socket.timeout:
        return False
    except (OSError, ssl.SSLError):
        return True


def trickle(c, data, every=0.1, limit=10.0):
    """Send data a byte every `every` s: the seconds until the node closes
    the connection, or None if it is still open after `limit` s."""
    t0 = time.time()
    for b in data:
        if time.time() - t0 > limit:
            return None
        try:
            c.send_raw(bytes([b]))
        except (OSError, ssl.SSLError):
            return time.time() - t0
        if gone(c, every):
            return time.time() - t0
    return None


JUNK = b"\x0a" * 200  # a frame body that never ends: the header says 1000

wait_for(lambda: rl.Conn(R1, tls()).admin("ops"), 10)

# --- no Hello, a byte at a time ---------------------------------------------------
# (mutation: routing.c peer_data setting last_rx at every read again --
# the connection is still open after 10 s)
c = rl.Conn(R1, tls())
took = trickle(c, struct.pack(">I", 1000) + JUNK)
check(took is not None and took < DEAD + 1.5,
      "a Hello trickled a byte every 0.1 s and never ended: closed within one dead interval "
      "of %.0f s (%s)" % (DEAD, "%.1f s" % took if took else "still open after 10 s"))
check(wait_for(lambda: "no Hello within" in open(log, errors="replace").read(), 5),
      "... and the node logs why (no Hello within ...)")
c.close()

# --- a Hello, then a Query that never ends -------------------------------------------
# (the same mutation: closed only when the trickle stops)
c = rl.Conn(R1, tls())
h = c.admin("ops")
took = trickle(c, struct.pack(">I", 1000) + JUNK) if h else None
check(h is not None and took is not None and took < DEAD + 1.5,
      "after Hello, a Query trickled and never ended (Pings not answered): closed within one "
      "dead interval (%s)" % ("%.1f s" % took if took else "still open after 10 s"))
c.close()

# --- the first frame is a Hello: 64 KiB -------------------------------------------------
# (mutation: routing.c peer_open without mm_frame_reader_first -- the node
# waits for the 512 KiB and closes only at the dead interval)
c = rl.Conn(R1, tls())
t0 = time.time()
c.send_raw(struct.pack(">I", 512 << 10) + b"\x0a" * 1000)
shut = gone(c, DEAD - 1)
check(shut, "a first frame announcing 512 KiB: closed at once (%.1f s), under the %.0f s of the "
      "dead interval" % (time.time() - t0, DEAD))
c.close()
check(wait_for(lambda: "a frame over the limit of 1048576 bytes (65536 before Hello)"
               in open(log, errors="replace").read(), 5), "... and logged so")

# (mutation: mm_frame_feed holding every frame to the first's limit -- the
# Query after the Hello is refused)
c = rl.Conn(R1, tls())
h = c.admin("ops")
got = c.ask("x" * (200 << 10)) if h else None
check(got is not None and got[0] == 64,
      "after Hello, a Query of 200 KiB is read and answered (64, no such command) (%r)"
      % (got[0] if got else None,))
c.close()

check(n1.poll() is None and rl.Conn(R1, tls()).admin("ops") is not None,
      "the node runs and answers an admin after all of it")
done()
