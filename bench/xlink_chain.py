#!/usr/bin/env python3
"""Convergence across routing groups over X-LINK2STATE, live, over mutual TLS.

A chain of 10 routing groups G1 - G2 - ... - G10 (routing-group connectors
both ways between neighbours, cost 1), each with a master and two servers:
Si1, the bridgehead of its group's connectors, and Si2, a member only. An
SMTP connector G1-Out at S11 is flipped down and up 50 times through the
control socket's test hook (`test-report`, --set test_hooks=1). Each time is
read from the daemons' own log lines, never by polling them:

  t0   S11 "routing: test hook: connector G1-Out: ... reported down|up"
  t1   the later of S10,1's and S10,2's first "routing: table digest ..."
       after t0: the far end routes by G1's new entry

(S10,1 learns it from S9,1 over X-LINK2STATE, S10,2 from G10's master, to
which S10,1 offered it.) Bytes: every exchange's "on the wire" octets (TLS
records and the plain text before STARTTLS; test_hooks=1 logs quiet rounds
too) between one flip and the next, and the entries that moved; then, with
nothing changing, the anti-entropy rounds of the next 35 s (the interval is
30 s): the cost of a quiet round.

usage: bench/xlink_chain.py BUILD_DIR [--flips N] [--groups N] [--gap-ms MS]
Goal: p99 <= 50 ms on loopback; per change the changed entry once per link,
not the table; a quiet round digests only.
"""
import argparse
import os
import re
import socket
import statistics
import sys
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import meshlib as M  # noqa: E402
import nodelib  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("--flips", type=int, default=50)
ap.add_argument("--groups", type=int, default=10)
ap.add_argument("--gap-ms", type=int, default=400, help="between flips")
ap.add_argument("--quiet-s", type=int, default=35, help="watched with nothing changing")
a = ap.parse_args()
B = os.path.abspath(a.build)
BIN = (B + "/node/meshnode", B + "/cli/meshctl", B + "/rgmaster/rgmaster")
W = nodelib.workdir("xlink-chain-bench")
N = a.groups

groups, conns = M.chain(N, servers=2, net="127.3.%d.")
M.write_ldif(os.path.join(W, "mesh.ldif"), groups, conns, [])
# the connector flipped: an SMTP connector of G1 at S11 (its smart host is
# never dialled: the test hook reports its bridgehead)
with open(os.path.join(W, "mesh.ldif"), "a") as f:
    f.write("\ndn: cn=G1-Out,cn=G1,o=Mesh\nobjectClass: mmConnector\ncn: G1-Out\n"
            "mmConnectorType: smtp\nmmCost: 1\nmmLocalBridgehead: cn=SMTP,cn=S11,cn=G1,o=Mesh\n"
            "mmAddressSpace: smtp:*.out.test 1\nmmSmartHost: [127.3.0.9]:25\n")
servers = {s: "%s:%d" % (ip, M.NODE_691) for g in groups for s, ip in g["servers"]}
masters = {m: "%s:%d" % (ip, M.MASTER_691) for g in groups for m, ip in g["masters"]}
mesh = M.Mesh(W, *BIN, os.path.join(W, "mesh.ldif"), servers, masters)
# the defaults but the test hook (and damping out of the way): anti-entropy
# every 30 s, so what moves a flip is the flood
for m in masters:  # (meshlib's masters ping every 100 ms: the nodes here, 1000)
    mesh.start_master(m, "--set", "ping_interval_ms=1000")
for s in servers:
    mesh.tls.setdefault(s, mesh.pki.dir(s))
    mesh.procs[s] = nodelib.node(BIN[0], mesh.ldif, s, mesh.spool(s), "--tls", mesh.tls[s],
                                 "--set", "test_hooks=1", "--set", "damp_penalty=0")
print("%d groups, %d servers and %d masters running; converging..."
      % (N, len(servers), len(masters)), flush=True)
if not nodelib.wait_for(mesh.converged, 120, 0.5):
    sys.exit("no convergence at start: %s (logs in %s)" % (mesh.digests(), W))

FAR = ["S%d1" % N, "S%d2" % N]


def stamp(line):
    return datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp()


def lines(name):
    with open(mesh.log(name), errors="replace") as f:
        return f.read().splitlines()


start = time.time()
sock = os.path.join(mesh.spool("S11"), "control.sock")
for k in range(a.flips):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(b"test-report %s G1-Out SMTP\n" % (b"down" if k % 2 == 0 else b"up"))
    if not s.recv(4096).startswith(b"0\n"):
        sys.exit("test-report refused")
    s.close()
    time.sleep(a.gap_ms / 1000)
flips_end = time.time()
time.sleep(1)
quiet_from = time.time()
print("flips done; watching %d s of quiet anti-entropy..." % a.quiet_s, flush=True)
time.sleep(a.quiet_s)
quiet_to = time.time()
for n in list(mesh.procs):
    mesh.stop(n)

# --- the logs -------------------------------------------------------------------
t0 = [stamp(x) for x in lines("S11") if "routing: test hook: connector \"G1-Out\"" in x]
DIG = re.compile(r"routing: table digest ([0-9a-f]+)")
far = {n: [stamp(x) for x in lines(n) if DIG.search(x)] for n in FAR}
XL = re.compile(r"xlink: with \S+: (equal, )?(\d+) taken, (\d+) dropped, (\d+) sent; (\d+) octets "
                r"out, (\d+) in; on the wire (\d+) out, (\d+) in")
ex = []  # (time, equal, entries moved, xlink octets, wire octets)
for n in servers:
    for x in lines(n):
        m = XL.search(x)
        if m:
            ex.append((stamp(x), bool(m.group(1)), int(m.group(2)) + int(m.group(4)),
                       int(m.group(5)) + int(m.group(6)), int(m.group(7)) + int(m.group(8))))
times, per_flip = [], []
for k, t in enumerate(t0):
    end = t0[k + 1] if k + 1 < len(t0) else flips_end + 1
    t1 = [next((u for u in far[n] if u >= t), None) for n in FAR]
    if None not in t1 and max(t1) < end:
        times.append((max(t1) - t) * 1000)
    w = [e for e in ex if t <= e[0] < end]
    per_flip.append((len(w), sum(e[2] for e in w), sum(e[3] for e in w), sum(e[4] for e in w)))
quiet = [e for e in ex if quiet_from <= e[0] < quiet_to]
if len(times) < len(t0):
    print("warning: %d of %d flips not seen at the far end before the next" % (
        len(t0) - len(times), len(t0)))
times.sort()
q = lambda p: times[min(len(times) - 1, int(round(p / 100 * (len(times) - 1))))]  # noqa: E731
print("\nconvergence across %d groups (%d hops), %d flips: p50 %.1f ms, p99 %.1f ms, max %.1f ms"
      % (N, N - 1, len(times), q(50), q(99), times[-1]))
print("goal: p99 <= 50 ms -> %s" % ("met" if q(99) <= 50 else "NOT met"))
mean = lambda xs: statistics.mean(xs) if xs else 0  # noqa: E731
print("per change: %.1f exchanges, %.1f entries moved (%d links: the entry once per link "
      "is %d), %.0f octets of X-LINK2STATE lines, %.0f octets on the wire"
      % (mean([p[0] for p in per_flip]), mean([p[1] for p in per_flip]), N - 1, N - 1,
         mean([p[2] for p in per_flip]), mean([p[3] for p in per_flip])))
print("quiet anti-entropy: %d rounds in %d s, %s" % (
    len(quiet), a.quiet_s,
    "all equal digests; per round %.0f octets of X-LINK2STATE lines (DIGEST and its "
    "answer), %.0f on the wire (the same in TLS records, on the session kept open since "
    "the last exchange)" % (mean([e[3] for e in quiet]), mean([e[4] for e in quiet]))
    if quiet and all(e[1] for e in quiet) else "NOT all equal: %s" % quiet[:3]))
print("logs in %s" % W)
