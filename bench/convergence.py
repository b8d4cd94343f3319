#!/usr/bin/env python3
"""Convergence of one live routing group: 20 meshnodes and their rgmaster
over mutual TLS on 127.2.0.x, in an organization of 10 groups (the other
nine only in the directory: their daemons need not run). 100 flips of the
routing-group connector G0-G1, injected at its bridgehead S01 through the
control socket's test hook (`test-report`, --set test_hooks=1; flap damping
is not on that path). Each time is read from the daemons' own log lines,
never by polling them:

  t0   S01 "routing: test hook: ... reported down|up"
  t1   the last of the 20 nodes' "routing: table digest ..., group version V"
       for the version V the master issued for that flip

and the bytes per flip from the master's "push: ..." lines (the delta it
sent, against the full table it sends a member that connects).

usage: bench/convergence.py BUILD_DIR [--flips N] [--nodes N]
Goal: p99 <= 50 ms on loopback; one entry per flip, not the table.
"""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("--flips", type=int, default=100)
ap.add_argument("--nodes", type=int, default=20)
ap.add_argument("--groups", type=int, default=10)
ap.add_argument("--gap-ms", type=int, default=150, help="between flips")
a = ap.parse_args()
B = os.path.abspath(a.build)
meshnode, meshctl, rgmaster = (B + "/node/meshnode", B + "/cli/meshctl", B + "/rgmaster/rgmaster")
W = tempfile.mkdtemp(prefix="mm-conv.")
NET = "127.2.0."
NODES = ["S%02d" % (i + 1) for i in range(a.nodes)]
IP = {n: NET + str(i + 1) for i, n in enumerate(NODES)}
MASTER = NET + "250:6910"
procs = []


def ldif():
    w = ["dn: o=Bench\nobjectClass: mmOrganization\no: Bench\n"]
    for g in range(a.groups):
        w.append("dn: cn=G%d,o=Bench\nobjectClass: mmRoutingGroup\ncn: G%d\n" % (g, g))
        maddr = MASTER if g == 0 else "127.2.%d.250:6910" % g
        w.append("dn: cn=G%d-RGM,cn=G%d,o=Bench\nobjectClass: mmMaster\ncn: G%d-RGM\n"
                 "mmRoutingAddress: %s\nmmPriority: 100\n" % (g, g, g, maddr))
        servers = NODES if g == 0 else ["X%d" % g]
        for s in servers:
            ip = IP[s] if g == 0 else "127.2.%d.1" % g
            w.append("dn: cn=%s,cn=G%d,o=Bench\nobjectClass: mmServer\ncn: %s\nmmFqdn: %s.bench\n"
                     "mmRoutingAddress: %s:6911\n" % (s, g, s, s.lower(), ip))
            w.append("dn: cn=SMTP,cn=%s,cn=G%d,o=Bench\nobjectClass: mmVirtualServer\ncn: SMTP\n"
                     "mmBind: %s:2525\nmmFqdn: %s.bench\n" % (s, g, ip, s.lower()))
    first = lambda g: NODES[0] if g == 0 else "X%d" % g  # noqa: E731
    for g in range(a.groups):  # a ring of routing-group connectors, both ways
        for h in ((g + 1) % a.groups, (g - 1) % a.groups):
            w.append("dn: cn=G%d-G%d,cn=G%d,o=Bench\nobjectClass: mmConnector\ncn: G%d-G%d\n"
                     "mmConnectorType: routing-group\nmmCost: 10\n"
                     "mmLocalBridgehead: cn=SMTP,cn=%s,cn=G%d,o=Bench\n"
                     "mmTargetGroup: cn=G%d,o=Bench\n"
                     "mmRemoteBridgehead: cn=SMTP,cn=%s,cn=G%d,o=Bench\n"
                     % (g, h, g, g, h, first(g), g, h, first(h), h))
    w.append("dn: cn=Policy,o=Bench\nobjectClass: mmRecipientPolicy\ncn: Policy\n"
             "mmAuthoritativeDomain: bench.test\n")
    path = os.path.join(W, "org.ldif")
    with open(path, "w") as f:
        f.write("\n".join(w))
    return path


def run(*args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("%s: %s" % (" ".join(args[:3]), r.stderr))


def tlsdir(name):
    d = os.path.join(W, "tls-" + name)
    os.makedirs(d)
    for f in ("ca.pem", name + ".pem", name + ".key"):
        shutil.copy2(os.path.join(W, "ca", f), d)
    return d


def start(args, log):
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(log, "ab"))
    if p.stdout.readline().strip() != b"ready":
        sys.exit("%s did not start: see %s" % (args[0], log))
    procs.append(p)
    return p


def stamp(line):
    """The log line's time in seconds (ISO 8601 UTC with milliseconds)."""
    return datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp()


def lines(path):
    with open(path, errors="replace") as f:
        return f.read().splitlines()


VER = re.compile(r"routing: table digest ([0-9a-f]+), group version \((\d+), (\d+), (\d+), (\d+)\)")
org = ldif()
run(meshctl, "pki", "init", "--dir", W + "/ca", "--org", "Bench")
run(meshctl, "--directory", "ldif:" + org, "pki", "issue", "--dir", W + "/ca", "G0-RGM", *NODES)
try:
    start([rgmaster, "--directory", "ldif:" + org, "--name", "G0-RGM", "--state", W + "/rgm",
           "--tls", tlsdir("G0-RGM")], W + "/G0-RGM.log")
    for n in NODES:
        start([meshnode, "--directory", "ldif:" + org, "--server", n, "--spool",
               W + "/" + n, "--tls", tlsdir(n), "--set", "test_hooks=1",
               "--set", "damp_penalty=0"], W + "/%s.log" % n)

    def settled():
        last = {}
        for n in NODES:
            vs = [VER.search(x) for x in lines(W + "/%s.log" % n)]
            vs = [m.group(1) for m in vs if m and m.group(2) != "0"]
            last[n] = vs[-1] if vs else None
        return None not in last.values() and len(set(last.values())) == 1

    deadline = time.time() + 60
    while not settled():
        if time.time() > deadline:
            sys.exit("the group did not converge at start: logs in %s" % W)
        time.sleep(0.2)
    sock = W + "/S01/control.sock"
    for k in range(a.flips):
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        s.sendall(b"test-report %s G0-G1 SMTP\n" % (b"down" if k % 2 == 0 else b"up"))
        answer = s.recv(4096)
        s.close()
        if not answer.startswith(b"0\n"):
            sys.exit("test-report refused: %r" % answer)
        time.sleep(a.gap_ms / 1000)
    time.sleep(1)
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()

# --- the logs -------------------------------------------------------------------
t0 = [stamp(x) for x in lines(W + "/S01.log") if "routing: test hook:" in x]
per_node = {}
for n in NODES:
    per_node[n] = [(stamp(x), m.group(1), tuple(int(v) for v in m.groups()[1:]))
                   for x in lines(W + "/%s.log" % n) for m in [VER.search(x)] if m]
master = lines(W + "/G0-RGM.log")
pushes = [(stamp(x), x) for x in master if "push: " in x]
full = [x for _, x in pushes if "push: full" in x]
times, bytes_, entries, mismatch = [], [], [], 0
for k, t in enumerate(t0):
    end = t0[k + 1] if k + 1 < len(t0) else float("inf")
    # the version the master issued: the highest any node took in the window
    window = {n: [e for e in evs if t <= e[0] < end] for n, evs in per_node.items()}
    best = max((e[2] for evs in window.values() for e in evs), default=None)
    if best is None:
        mismatch += 1
        continue
    got = [min((e[0] for e in evs if e[2] == best), default=None) for evs in window.values()]
    digests = {e[1] for evs in window.values() for e in evs if e[2] == best}
    if None in got or len(digests) != 1:
        mismatch += 1
        continue
    times.append((max(got) - t) * 1000)
    sent = [x for ts, x in pushes if t <= ts < end and "push: full" not in x]
    bytes_.append(sum(int(m.group(1)) * int(m.group(2))
                      for x in sent for m in [re.search(r"(\d+) bytes, to (\d+) peers", x)] if m))
    entries.extend(int(m.group(1)) for x in sent for m in [re.search(r"push: (\d+) entries", x)] if m)

times.sort()


def pct(p):
    return times[min(len(times) - 1, int(round(p / 100 * (len(times) - 1))))] if times else float("nan")


fullsize = max((int(m.group(1)) for x in full for m in [re.search(r"(\d+) bytes", x)] if m),
               default=0)
print("convergence: %d nodes in group G0 of %d groups, %d flips (%d did not converge in "
      "their window)" % (a.nodes, a.groups, len(t0), mismatch))
print("  from S01's report to the last node on the new version: p50 %.1f ms  p99 %.1f ms  "
      "max %.1f ms (log stamps: 1 ms resolution)" % (pct(50), pct(99), times[-1] if times else 0))
print("  goal p99 <= 50 ms: %.2fx the goal" % (pct(99) / 50.0))
if bytes_:
    print("  master's push per flip: %d bytes to %d members (%.0f bytes each); the full table "
          "a connecting member gets: %d bytes (delta/full = %.3f)"
          % (sum(bytes_) / len(bytes_), a.nodes, sum(bytes_) / len(bytes_) / a.nodes, fullsize,
             (sum(bytes_) / len(bytes_) / a.nodes) / fullsize if fullsize else 0))
    print("  entries per push: %s (the table has %d)" % (sorted(set(entries)), a.groups))
shutil.rmtree(W, ignore_errors=True)
