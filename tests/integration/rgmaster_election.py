#!/usr/bin/env python3
"""Two rgmaster candidates of one group, real processes on 127.0.51.x with
mutual TLS: exactly one active (the higher priority), the other standing
by with the same digest; kill -9 of the active, and the standby takes over
within a few dead intervals at a higher incarnation; the old one restarted
takes over again after settle_ms, above that; every candidate asked, always
at most one active, and versions only go up.

Each check names, in "(mutation: ...)", the change to the code it was seen
to fail on.

usage: rgmaster_election.py RGMASTER MESHCTL MKORG
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rgmlib as R  # noqa: E402
from nodelib import check, wait_for, workdir  # noqa: E402

rgmaster, meshctl, mkorg = sys.argv[1:4]
W = workdir("rgm-election")
A_IP, B_IP = "127.0.51.1", "127.0.51.2"
A, B = A_IP + ":6910", B_IP + ":6910"
ldif = R.org(mkorg, os.path.join(W, "lab.ldif"), A_IP, candidates=[("LAB-RGM2", B_IP, 50)])
pki = R.Pki(meshctl, ldif, W)
pki.issue("LAB-RGM", "LAB-RGM2", "admin", "N1")
tls = {"LAB-RGM": pki.dir("LAB-RGM"), "LAB-RGM2": pki.dir("LAB-RGM2")}
admin = pki.dir("admin")
addr = {"LAB-RGM": A, "LAB-RGM2": B}
DEAD_S = 0.3  # ping_interval_ms 100 x dead_after 3 (rgmlib.FAST)

seen = []  # (candidate, role, Lab's version) of every answer, in time order


def start(name):
    return R.master(rgmaster, ldif, name, os.path.join(W, "state-" + name), tls[name],
                    log=os.path.join(W, name + ".log"))


def ask():
    """{name: table} of every candidate that answers."""
    out = {}
    for name, a in addr.items():
        t = R.table(meshctl, a, admin)
        if t:
            out[name] = t
            if R.version(t) and R.version(t)[0] > 0:
                seen.append((name, t["role"], R.version(t)))
    return out


def actives(ts):
    return sorted(n for n, t in ts.items() if t["role"] == "master-active")


def settled(active, standby):
    """active says master-active, standby master-standby, same digest and
    the same published version: the group as it should be."""
    ts = ask()
    if active not in ts or standby not in ts:
        return None
    a, s = ts[active], ts[standby]
    if a["role"] != "master-active" or s["role"] != "master-standby":
        return None
    if a["digest"] != s["digest"] or not R.version(a) or R.version(a)[0] == 0:
        return None
    return ts


pa = start("LAB-RGM")
pb = start("LAB-RGM2")
# a member, dialling the candidates as a node does (a master that has heard
# no member publishes nothing)
n1 = pki.dir("N1")
member = R.Member([A, B], "N1", cert=(os.path.join(n1, "N1.pem"), os.path.join(n1, "N1.key")),
                  cafile=os.path.join(n1, "ca.pem"))
ts = wait_for(lambda: settled("LAB-RGM", "LAB-RGM2"), 15)
check(ts is not None, "two candidates: LAB-RGM (priority 100) master-active, LAB-RGM2 "
      "(50) master-standby (mutation: dial() with MM_CERT_SERVER: no candidate link, both "
      "active)")
check(ts and actives(ts) == ["LAB-RGM"], "exactly one active: %s" % (ts and actives(ts)))
check(ts and ts["LAB-RGM"]["digest"] == ts["LAB-RGM2"]["digest"] and
      R.version(ts["LAB-RGM"]) == R.version(ts["LAB-RGM2"]),
      "equal digests and versions on both: the standby holds the active's entry (%s) "
      "(mutation: net_data() dropping the frames after the first of a read)" %
      (ts and [R.version(t) for t in ts.values()]))
check(ts and R.group(ts["LAB-RGM2"])["master"] == "LAB-RGM",
      "the standby's table names LAB-RGM the master")
# the candidates' link leaves from the dialler's routing IP
ss = subprocess.run(["ss", "-Htn", "state", "established"], capture_output=True,
                    text=True).stdout
check("%s:" % B_IP in ss and any(("%s:" % B_IP) in line and A in line
                                   for line in ss.splitlines()),
      "LAB-RGM2's connection to LAB-RGM leaves from 127.0.51.2 (mutation: "
      "mm_net_bind_source() not called)")
inc1 = R.version(ts["LAB-RGM"])[0] if ts else 0

# kill -9 the active: the standby takes over
pa.send_signal(signal.SIGKILL)
pa.wait()
t0 = time.time()
tb = wait_for(lambda: (lambda t: t if t and t["role"] == "master-active" and R.version(t) and
                       R.version(t)[0] > inc1 else None)(R.table(meshctl, B, admin)), 10)
took = time.time() - t0
check(tb is not None and took < 10 * DEAD_S + 2,
      "kill -9 of LAB-RGM: LAB-RGM2 says master-active within %.1f s (%.1f dead intervals) "
      "(mutation: net_closed() not telling the machine, and timer_arm() in seconds)"
      % (took, took / DEAD_S))
inc2 = R.version(tb)[0] if tb else 0
check(inc2 > inc1, "... at incarnation %d, above LAB-RGM's %d (mutation: none in the "
      "driver; persist() failing keeps it standby)" % (inc2, inc1))
check(tb and R.group(tb)["master"] == "LAB-RGM2" and
      [m["state"] for m in R.group(tb)["master_candidates"]] == ["down", "up"],
      "its table names itself master, LAB-RGM down (%s)" %
      (tb and [(m["name"], m["state"]) for m in R.group(tb)["master_candidates"]]))

# the old one comes back: standby first, then active again above
pa = start("LAB-RGM")
ta = R.table(meshctl, A, admin)
check(ta and ta["role"] == "master-standby",
      "LAB-RGM restarted: master-standby at first (%s)" % (ta and ta["role"]))
ts = wait_for(lambda: (lambda ts: ts if ts and R.version(ts["LAB-RGM"])[0] > inc2 else None)(
    settled("LAB-RGM", "LAB-RGM2")), 15)
check(ts is not None, "after settle_ms LAB-RGM is master-active again, LAB-RGM2 standby, "
      "same digest (mutation: conn_broken() for every frame: no candidate link)")
inc3 = R.version(ts["LAB-RGM"])[0] if ts else 0
check(inc3 > inc2, "... at incarnation %d, above LAB-RGM2's %d" % (inc3, inc2))
check(ts and actives(ts) == ["LAB-RGM"], "every candidate asked: exactly one active (%s)"
      % (ts and actives(ts)))

# over the whole run: each candidate's versions, and the active ones', only
# went up
def upward(vs):
    return all(b >= a for a, b in zip(vs, vs[1:]))


per = {n: [v for c, _, v in seen if c == n] for n in addr}
act = [v for _, role, v in seen if role == "master-active"]
check(all(upward(vs) for vs in per.values()) and upward(act),
      "versions never went back, on either candidate nor from one active to the next "
      "(%d answers: %s ... %s)" % (len(seen), act[:1], act[-1:]))
check(R.log_has(os.path.join(W, "LAB-RGM2.log"), "stepping down: LAB-RGM is active"),
      "LAB-RGM2 logged its step-down")
R.done()
