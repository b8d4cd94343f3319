#!/usr/bin/env python3
"""A TLS rgmaster (127.0.52.x) against what should not get in: plain TCP,
a self-signed certificate, an organization server's certificate speaking
as a master, meshctl --connect with a server's certificate instead of an
admin's, a TCP connection that never starts TLS, an oversized frame,
garbage, a frame before Hello, a second Hello; each refused or closed,
and after each the master still answers an admin (so one bad peer closes
only its own connection). Python sockets and ssl for the raw frames.

Each check names, in "(mutation: ...)", the change to the code it was seen
to fail on.

usage: rgmaster_security.py RGMASTER MESHCTL MKORG
"""
import json
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rgmlib as R  # noqa: E402
from nodelib import check, wait_for, workdir  # noqa: E402

rgmaster, meshctl, mkorg = sys.argv[1:4]
W = workdir("rgm-security")
IP = "127.0.52.1"
ADDR = IP + ":6910"
ldif = R.org(mkorg, os.path.join(W, "lab.ldif"), IP, candidates=[("LAB-RGM2", "127.0.52.2", 50)])
pki = R.Pki(meshctl, ldif, W)
pki.issue("LAB-RGM", "LAB-RGM2", "N1", "admin")
tls, admin, n1 = pki.dir("LAB-RGM"), pki.dir("admin"), pki.dir("N1")
log = os.path.join(W, "LAB-RGM.log")
# the default liveness (a dead interval of 3 s, and as long for a TLS
# handshake), so that a close "at once" (within 1 s) is the master's
# refusal, not its liveness timer
p = R.master(rgmaster, ldif, "LAB-RGM", os.path.join(W, "state"), tls, log=log,
             extra=["--set", "ping_interval_ms=1000", "--set", "dead_after=3"])
CA = os.path.join(admin, "ca.pem")
ADMIN = (os.path.join(admin, "admin.pem"), os.path.join(admin, "admin.key"))
N1 = (os.path.join(n1, "N1.pem"), os.path.join(n1, "N1.key"))


def raw(cert=None):
    return R.Raw691(ADDR, cert=cert, cafile=CA if cert else None, timeout=2)


def at_once(c):
    """closed within 1 s: a refusal, not the 3 s liveness timer"""
    return c.closed(timeout=1.0)


def serving(what):
    """After WHAT: the master still answers an admin, and runs."""
    t = R.table(meshctl, ADDR, admin)
    check(p.poll() is None and t is not None and t["server"] == "LAB-RGM",
          "... after %s the master serves an admin (mutation: conn_broken() ending the "
          "loop)" % what)


wait_for(lambda: R.table(meshctl, ADDR, admin), 10)

# plain TCP to the TLS listener: a Hello in the clear
c = raw()
c.send(R.hello_frame("ops", R.ROLE_ADMIN))
got = c.frame()
check(got is None and at_once(c), "plain TCP with an admin's Hello: closed, nothing answered "
      "(%r) (mutation: mm_net_init() with insecure true)" % (got,))
c.close()
serving("plain TCP")

# a stranger's self-signed certificate naming admin and master
for kind, name in (("admin", "admin"), ("master", "LAB-RGM2")):
    d = R.self_signed(W, name, kind)
    try:
        c = R.Raw691(ADDR, cert=(d + "/%s.pem" % name, d + "/%s.key" % name), cafile=CA)
        c.send(R.hello_frame(name, R.ROLE_ADMIN if kind == "admin" else R.ROLE_MASTER,
                             "" if kind == "admin" else "Lab"))
        got = c.frame()
        c.close()
    except (OSError, ValueError):
        got = None
    check(got is None, "a self-signed certificate saying mailmesh:%s:%s: no answer (%r) "
          "(mutation: the accept context verifying with verify_later)" % (kind, name, got))
    serving("a self-signed " + kind)

# a server's certificate (N1) speaking as a master candidate, as an admin
for role, name, group in ((R.ROLE_MASTER, "LAB-RGM2", "Lab"), (R.ROLE_MASTER, "N1", "Lab"),
                          (R.ROLE_ADMIN, "N1", "")):
    c = raw(N1)
    c.send(R.hello_frame(name, role, group))
    got = c.frame()
    check(got is None and at_once(c),
          "N1's certificate, Hello as %s %s: closed without a Hello (%r) (mutation: "
          "net_opened() passing no identity to the machine)"
          % ("master" if role == R.ROLE_MASTER else "admin", name, got))
    c.close()
check(wait_for(lambda: R.log_has(log, "Hello speaks as master \"LAB-RGM2\", the certificate "
                                 "names server \"N1\""), 5),
      "... the master logs whose certificate it was")
serving("a server's certificate speaking as a master")

# meshctl --connect with a server certificate instead of an admin one
r = R.ctl(meshctl, ADDR, n1, "--json", "table", as_="N1")
check(r.returncode == 77 and r.stdout == "" and "refused us" in r.stderr,
      "meshctl --connect --as N1 (a server's certificate): exit 77, nothing printed (%d %r) "
      "(mutation: cert_ok() accepting any kind for an admin)" % (r.returncode, r.stderr.strip()))
serving("a server certificate's --connect")
r = R.ctl(meshctl, ADDR, admin, "--json", "table", as_="alice")
check(r.returncode == 78 and "alice.pem" in r.stderr,
      "--as alice without alice.pem: exit 78 naming it (%d %r)" % (r.returncode, r.stderr))

# a peer that never starts TLS is dropped after the handshake deadline
c = raw()
t0 = time.time()
gone = c.closed(timeout=10)
took = time.time() - t0
check(gone and 2.5 < took < 5,
      "a TCP connection that never starts TLS: dropped after %.1f s, the dead interval of "
      "3 s (mutation: net.handshake_ms left at 10 s)" % took)
c.close()

# as an admin over TLS: an oversized frame, garbage, a frame before Hello
c = raw(ADMIN)
c.send(struct.pack(">I", 16 * 1024 * 1024 + 1) + b"x" * 1000)
check(at_once(c), "a header announcing 16 MiB + 1: closed at once (mutation: "
      "conn_broken() not closing the socket)")
c.close()
serving("an oversized frame")
c = raw(ADMIN)
c.send(struct.pack(">I", 12) + b"\xff" * 12)
check(at_once(c), "a frame that does not decode: closed (mutation: net_data() going on after "
      "MM_FRAME_BAD)")
c.close()
serving("a garbage frame")
c = raw(ADMIN)
c.send(R.query_frame("table", "json"))
check(c.frame() is None and at_once(c), "a Query before Hello: closed, no Reply")
c.close()
serving("a frame before Hello")
c = raw(ADMIN)
c.send(R.hello_frame("admin", R.ROLE_ADMIN))
h = c.frame()
c.send(R.hello_frame("admin", R.ROLE_ADMIN))
check(h and h[0] == "hello" and c.frame() is None and at_once(c),
      "an admin's second Hello: closed")
c.close()
c = raw(ADMIN)
c.send(R.hello_frame("admin", R.ROLE_ADMIN, major=2))
check(c.frame() is None and at_once(c), "protocol major 2: closed")
c.close()

# a frame in pieces, a byte at a time, and two frames in one write
c = raw(ADMIN)
for b in R.hello_frame("admin", R.ROLE_ADMIN):
    c.send(bytes([b]))
h = c.frame()
c.send(R.query_frame("table", "json") + R.query_frame("table", "text"))
r1, r2 = c.frame(), c.frame()
ok = (h and h[0] == "hello" and r1 and r1[0] == "reply" and r2 and r2[0] == "reply" and
      json.loads(r1[1][2][0]).get("server") == "LAB-RGM" and
      r2[1][2][0].startswith(b"Answered by LAB-RGM"))
check(ok, "a Hello a byte at a time, then two Queries in one write: both answered, in order "
      "(mutation: net_data() taking one frame per read)")
c.close()

# many bad peers at once, then a good one: 12, within the bound of 16
# connections per address (conn_per_address), which would otherwise refuse
# the last ones whenever the master had not yet closed the first
bad = []
for i in range(12):
    c = raw(ADMIN)
    c.send(b"\x00\x00\x00\x05hello" if i % 2 else struct.pack(">I", 1 << 30))
    bad.append(c)
check(all(at_once(c) for c in bad), "12 admins sending garbage at once: all closed")
for c in bad:
    c.close()
serving("12 bad peers")
R.done()
