#!/usr/bin/env python3
"""The node's 691 listener with --tls (certificates from meshctl pki): it
listens on its mmRoutingAddress; plain TCP, a client without a
certificate, garbage and frames out of place close that connection only;
an admin's Hello and Query are answered (Reply {status, json}) with the
same answers as the control socket for the queues; a certificate that is
not an admin's may read but not retry, freeze or thaw; and the node goes on
delivering mail through all of it. Each check names the mutation of the
code it was seen to catch.

usage: routing_listener.py MESHNODE MESHCTL MKORG SCHEMA
"""
import json
import os
import shutil
import smtplib
import ssl
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import routing_lib as rl  # noqa: E402
from nodelib import check, done, files, node, port_open, sink, wait_for, workdir  # noqa: E402

meshnode, meshctl = sys.argv[1:3]
W = workdir("rt-listen")
N1, N2 = ("127.0.63.1", 2525), ("127.0.63.2", 2525)
R1 = "127.0.63.1:6911"
PRIMARY, BACKUP = "127.0.63.3:25250", "127.0.63.4:25250"
ldif = os.path.join(W, "lab.ldif")
rl.org(ldif, "%s:%d" % N1, PRIMARY, BACKUP, n2="%s:%d" % N2, master="127.0.63.9:6910")
CA, T1 = W + "/ca", W + "/tls-n1"


def ctl(*args):
    return subprocess.run([meshctl] + list(args), capture_output=True, text=True)


r1 = ctl("pki", "init", "--dir", CA, "--org", "Lab")
r2 = ctl("--directory", "ldif:" + ldif, "pki", "issue", "--dir", CA, "N1", "N2", "--admin", "ops")
check(r1.returncode == 0 and r2.returncode == 0, "meshctl pki: the CA, N1, N2 and admin ops "
      "(%s %s)" % (r1.stderr.strip(), r2.stderr.strip()))
os.makedirs(T1)
for f in ("ca.pem", "N1.pem", "N1.key"):
    shutil.copy2(os.path.join(CA, f), T1)
sink(PRIMARY, W + "/primary")
sink(BACKUP, W + "/backup")
s1 = W + "/n1"
n1 = node(meshnode, ldif, "N1", s1, "--tls", T1, "--set", "retry_min_ms=200")
log = os.path.join(W, "N1.log")


def logtext():
    return open(log, errors="replace").read()


def tls(cert=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(CA + "/ca.pem")
    ctx.check_hostname = False
    if cert:
        ctx.load_cert_chain(CA + "/%s.pem" % cert, CA + "/%s.key" % cert)
    return ctx


def closed_after(what, cert="ops", hello_first=True):
    """Connect with cert, Hello as it when hello_first, then send what
    (bytes, or a frame as fields): True when the node closes."""
    try:
        c = rl.Conn(R1, tls(cert) if cert else None, timeout=10)
        if hello_first and c.admin(cert) is None:
            return "no Hello"
        if isinstance(what, bytes):
            c.send_raw(what)
        else:
            c.send(what)
        return c.closed()
    except (ssl.SSLError, OSError):
        return True


def delivered(subject):
    return any(("Subject: %s\n" % subject) in open(f, errors="replace").read()
               for f in files(W + "/primary"))


def mail(subject):
    c = smtplib.SMTP(*N1)
    c.sendmail("s@example.org", ["far@example.net"], "Subject: %s\r\n\r\nx\r\n" % subject)
    c.quit()
    return wait_for(lambda: delivered(subject), 15)


check(port_open("127.0.63.1", 6911), "N1 listens on its routing address %s" % R1)
check(mail("before"), "N1 delivers mail")

# --- what closes a connection -------------------------------------------------
# (mutation: net691 accept_cb taking plain TCP when --tls is given: the
# bytes were read as frames, the connection stayed)
c = rl.Conn(R1)
c.send_raw(b"EHLO plain.test\r\n" + b"\x00" * 64)
check(c.closed(), "plain TCP to a TLS node's 691: the connection is closed")
c.close()
check(closed_after(rl.hello("ops"), cert=None, hello_first=False),
      "TLS without a client certificate: closed")
# (mutation: peer_data() without the check of the first frame: a Query
# before Hello was answered)
check(closed_after(rl.query("table", "json"), hello_first=False),
      "a Query before Hello: closed")
check(closed_after(b"\xff\xff\xff\xff", hello_first=False),
      "a frame header announcing 4 GiB: closed")
# (mutation: PEER_FRAME_LIMIT of 16 MiB: a 2 MiB frame was waited for)
check(closed_after(struct.pack(">I", 2 << 20) + b"x" * 1000),
      "after Hello, a frame over the listener's 1 MiB limit: closed")
check(closed_after(struct.pack(">I", 3) + b"\xff\xff\xff"),
      "after Hello, a frame that does not decode: closed")
check(closed_after(rl.hello("ops")), "a second Hello: closed")
check(closed_after([[3, [[1, "N1"], [3, 1]]]]), "a StateReport from an admin: closed")
# (mutation: peer_hello() without the role check: a node's Hello was taken)
check(closed_after(rl.hello("N2", role=rl.ROLE_NODE, group="Lab"), cert="N2",
                   hello_first=False),
      "a NODE Hello (server N2's certificate): closed, a node takes only queries")
check(closed_after(rl.hello("ops", major=2), hello_first=False),
      "an unknown protocol major version: closed")
# (mutation: peer_hello() not comparing the certificate with the Hello:
# admin ops could speak as alice)
check(closed_after(rl.hello("alice"), hello_first=False),
      "admin ops's certificate with a Hello naming alice: closed")
check("certificate names admin \"ops\", its Hello admin \"alice\"" in logtext(),
      "the mismatch is logged")
check(n1.poll() is None and mail("after-garbage"),
      "after all of it the node runs and delivers mail")

# --- queries ------------------------------------------------------------------------
c = rl.Conn(R1, tls("ops"))
h = c.admin("ops")
check(h is not None and rl.get(h, 1) == b"N1" and rl.get(h, 2) == b"Lab" and
      rl.get(h, 7, 0) == rl.ROLE_NODE and rl.get(h, 5) == 1,
      "an admin's Hello is answered with the node's: N1 of Lab, role NODE, major 1")
st, js = c.ask("table", "json")
t = json.loads(js) if st == 0 else {}
check(st == 0 and t.get("server") == "N1" and t.get("role") == "node" and
      t.get("organization") == "Lab" and [g["name"] for g in t.get("groups", [])] == ["Lab"],
      "table: status 0, the JSON of meshctl table with server N1 and role node")
off = json.loads(ctl("--directory", "ldif:" + ldif, "--json", "table").stdout)
same = dict(t)
same.update({"server": None, "role": "offline"})
check(same == off, "with nothing down the view is the offline table field for field "
      "(the shape of meshctl --json table)")
st, txt = c.ask("table", "text")
# (one renderer with offline meshctl and rgmaster: cli/table_view.c)
check(st == 0 and txt.startswith("Answered by N1 (node)\nOrganization Lab: 1 routing groups\n")
      and "Primary" in txt, "table as text, saying who answered")
st, js = c.ask("route", "json", "alice@example.test")
check(st == 0 and json.loads(js).get("kind") == "local" and json.loads(js).get("from") == "N1",
      "route alice@example.test: local, from N1")
st, js = c.ask("route", "json", "nobody@example.test")
check(st == 67 and "error" in json.loads(js), "route of an unknown recipient: 67 (as meshctl "
      "route), {\"error\": ...}")
st, js = c.ask("route", "json", "not-an-address")
check(st == 64, "route of a bad address: 64")
# (mutation: query.c queues rendered apart from control.c: the two differed)
st, js = c.ask("queues", "json")
ours = json.loads(js) if st == 0 else {}
sock = json.loads(ctl("--spool", s1, "--json", "queues").stdout)
key = lambda v: [(q["id"], q["name"], q["state"], q["messages"]) for q in v["queues"]]  # noqa
check(st == 0 and ours.get("server") == "N1" and key(ours) == key(sock),
      "queues: the same as the control socket (%d queues)" % len(ours.get("queues", [])))
st, js = c.ask("freeze", "json", "Primary")
check(st == 0 and json.loads(js).get("state") == "Frozen", "freeze Primary with an admin "
      "certificate: 0, Frozen")
q = [x for x in json.loads(ctl("--spool", s1, "--json", "queues").stdout)["queues"]
     if x["name"] == "Primary"]
check(q and q[0]["state"] == "Frozen", "the control socket shows it Frozen")
st, js = c.ask("thaw", "json", "Primary")
check(st == 0 and json.loads(js).get("state") != "Frozen", "thaw: 0")
st, js = c.ask("queue", "json", "No Such Queue")
check(st == 65, "queue with an unknown name: 65, as the control socket")
# the bench's test hook is the control socket's, and only with
# test_hooks=1 (mutation: test_report without the setting check -- the
# second check; the first guards that no 691 path ever reaches the hook)
st, js = c.ask("test-report", "json", "down Primary SMTP")
check(st == 64, "test-report over 691: 64, an unknown command (%d)" % st)
import socket  # noqa: E402
k = socket.socket(socket.AF_UNIX)
k.connect(os.path.join(s1, "control.sock"))
k.sendall(b"test-report down Primary SMTP\n")
got = k.recv(4096)
k.close()
check(got.startswith(b"64\n") and b"test hooks are off" in got,
      "test-report at the control socket without test_hooks=1: 64 (%r)" % got[:40])
check("test hook" not in logtext(), "... and nothing was reported")
st, js = c.ask("table")
check(st == 64 and "json" in json.loads(js).get("error", ""), "no output format in args[0]: 64")
st, js = c.ask("bogus", "json")
check(st == 64, "an unknown command: 64")
st, js = c.ask("queues", "text")
check(st == 0 and "Primary" in js and js.startswith("ID "), "queues as text")
c.close()

# a server's certificate with an admin Hello of its own name: read-only
c = rl.Conn(R1, tls("N2"))
check(c.admin("N2") is not None, "server N2's certificate, admin Hello as N2: answered")
st, js = c.ask("table", "json")
check(st == 0, "it may read the table")
# (mutation: peer_hello() letting any certificate change queues)
st, js = c.ask("freeze", "json", "Primary")
check(st == 77 and "admin certificate" in json.loads(js).get("error", ""),
      "freeze with a certificate that is not an admin's: 77, refused")
c.close()
q = [x for x in json.loads(ctl("--spool", s1, "--json", "queues").stdout)["queues"]
     if x["name"] == "Primary"]
check(q and q[0]["state"] != "Frozen", "and nothing was frozen")
check(mail("at-the-end"), "N1 delivers mail at the end")
done()
