#!/usr/bin/env python3
"""What one peer may hold of an rgmaster (127.0.93.x, mutual TLS, the
default dead interval of 3 s, and small connection bounds set for the
test: conn_per_address=4, conn_max=10):

- a first frame announcing 8 MiB is refused from its header: the
  connection closes at once (the first frame is a Hello, read up to 64
  KiB), where before the master read on towards the 16 MiB of a push;
- after Hello, a 200 KiB Query is still read (and answered);
- from one address outside the directory, 4 connections are held and
  more are closed at accept; from outside the directory 10 in all; the
  directory's own addresses (N1's) are not held back by that bound, and
  an admin is answered throughout.

Each check names, in "(mutation: ...)", the change to the code it was seen
to fail on.

usage: rgmaster_bounds.py RGMASTER MESHCTL MKORG
"""
import os
import socket
import ssl
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rgmlib as R  # noqa: E402
from nodelib import check, wait_for, workdir  # noqa: E402

rgmaster, meshctl, mkorg = sys.argv[1:4]
W = workdir("rgm-bounds")
IP = "127.0.93.1"  # LAB-RGM on :6910, N1's routing address on :6911
ADDR = IP + ":6910"
ldif = R.org(mkorg, os.path.join(W, "lab.ldif"), IP)
pki = R.Pki(meshctl, ldif, W)
pki.issue("LAB-RGM", "N1", "admin")
tls, admin, n1 = pki.dir("LAB-RGM"), pki.dir("admin"), pki.dir("N1")
log = os.path.join(W, "LAB-RGM.log")
PER, MAX = 4, 10
p = R.master(rgmaster, ldif, "LAB-RGM", os.path.join(W, "state"), tls, log=log,
             extra=["--set", "ping_interval_ms=1000", "--set", "dead_after=3",
                    "--set", "conn_per_address=%d" % PER, "--set", "conn_max=%d" % MAX])
CA = os.path.join(admin, "ca.pem")
ADMIN = (os.path.join(admin, "admin.pem"), os.path.join(admin, "admin.key"))
N1 = (os.path.join(n1, "N1.pem"), os.path.join(n1, "N1.key"))


class Conn(R.Raw691):
    """Raw691 from a source address of our choice."""

    def __init__(self, source, cert=ADMIN, timeout=3):
        s = socket.create_connection((IP, 6910), timeout, source_address=(source, 0))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False
        ctx.load_verify_locations(CA)
        ctx.load_cert_chain(*cert)
        self.s = ctx.wrap_socket(s)
        self.buf = b""


def hello(source, cert=ADMIN, name="admin", role=R.ROLE_ADMIN, group=""):
    """A connection from source answered with the master's Hello, or None
    when it is closed before (at accept, or at once after TLS)."""
    try:
        c = Conn(source, cert)
        c.send(R.hello_frame(name, role, group))
        got = c.frame()
    except (OSError, ssl.SSLError):
        return None
    if got is None or got[0] != "hello":
        c.close()
        return None
    return c


def serving(what):
    t = R.table(meshctl, ADDR, admin)
    check(p.poll() is None and t is not None and t["server"] == "LAB-RGM",
          "... %s: the master answers an admin" % what)


wait_for(lambda: R.table(meshctl, ADDR, admin), 10)

# --- the first frame ----------------------------------------------------------
# (mutation: rgm_env.c conn_new without mm_frame_reader_first -- the master
# reads on and closes only at the 3 s dead interval)
c = Conn("127.0.93.100")
t0 = time.time()
c.send(struct.pack(">I", 8 << 20) + b"\x0a" * (100 << 10))
shut = c.closed(timeout=1.0)
check(shut, "a first frame announcing 8 MiB: closed at once (%.1f s; the dead interval is 3 s)"
      % (time.time() - t0))
c.close()
check(wait_for(lambda: R.log_has(log, "a frame over the limit (64 KiB until Hello): closed"), 5),
      "... and the master says why")
serving("after an 8 MiB header")

# (mutation: mm_frame_feed holding every frame to the first's limit -- the
# Query after the Hello is refused and the connection closed)
c = hello("127.0.93.100")
if c:
    c.send(R.query_frame("x" * (200 << 10), "json"))
    got = c.frame()
    c.close()
check(c is not None and got is not None and got[0] == "reply" and got[1][1][0] == 64,
      "after Hello, a Query of 200 KiB is read and answered: 64, not a master's command")

# --- the connection bounds ---------------------------------------------------------
# (mutation: net691.c within_bounds answering true -- all 6 from one
# address are held)
held = [hello("127.0.93.101") for _ in range(PER + 2)]
got = sum(1 for c in held if c)
check(got == PER, "6 admins from one address: %d held, the rest closed at accept (%d held)"
      % (PER, got))
serving("with one address at its bound")

# (mutation: net691.c within_bounds without the conn_max part, and
# count_open without it -- all 16 from outside the directory are held)
more = [hello("127.0.93.%d" % (102 + i // PER)) for i in range(3 * PER)]
total = got + sum(1 for c in more if c)
check(total == MAX, "from outside the directory %d connections held in all (%d)" % (MAX, total))

# the directory's addresses are not held back by conn_max (mutation:
# within_bounds applying conn_max to them -- N1 is closed at accept)
m = hello(IP, cert=N1, name="N1", role=R.ROLE_NODE, group="Lab")
check(m is not None, "N1, from its routing address, is answered with %d held from outside"
      % MAX)
for c in held + more + [m]:
    if c:
        c.close()
check(wait_for(lambda: R.table(meshctl, ADDR, admin) is not None, 10),
      "once they are gone, an admin is answered again")
check(wait_for(lambda: R.log_has(log, "connections over the bounds"), 5),
      "the refusals are reported in the log")
R.done()
