#!/usr/bin/env python3
"""Master failover with members, real processes over mutual TLS on
127.0.67.x: candidates LAB-RGM (priority 100) and LAB-RGM2 (50), nodes
N1..N3; Primary's bridgehead is N1, Backup's N2.

- kill -9 of the active master: members keep delivering; LAB-RGM2 takes
  over; the versions members hold continue upward;
- the old master restarted: every candidate asked, exactly one active,
  and one digest everywhere;
- both masters killed, then Primary's smart host stopped: N1's own report
  reroutes its mail to Backup at once, with no master;
- LAB-RGM2 restarted with its --state deleted: it learns the state from
  the members (Primary down in every table) and the versions members saw
  never went backwards, through all of it.

Each check names, in "(mutation: ...)", the change to the code it was seen
to fail on.

usage: routing_failover.py MESHNODE MESHCTL RGMASTER
"""
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grouplib  # noqa: E402
import nodelib  # noqa: E402
import rgmlib as R  # noqa: E402
from grouplib import state  # noqa: E402
from nodelib import check, sink, wait_for, workdir  # noqa: E402

meshnode, meshctl, rgmaster = sys.argv[1:4]
W = workdir("rt-failover")
G = grouplib.Group(W, meshctl, "127.0.67.", nodes=3,
                   candidates=(("LAB-RGM", 250, 100), ("LAB-RGM2", 251, 50)))
CANDS = ["LAB-RGM", "LAB-RGM2"]
p_sink = sink(G.primary, W + "/primary")
sink(G.backup, W + "/backup")
masters = {c: G.master(rgmaster, c) for c in CANDS}
for n in G.nodes:
    G.node(meshnode, n, "--set", "reroute_hold_ms=60000")

highest = {}  # node -> the highest Lab version it was seen holding
backwards = []


def watch(ts):
    """The versions in ts (name -> table); a node's version lower than
    one seen before is kept in backwards."""
    for n, t in ts.items():
        if n not in G.nodes:
            continue
        v = R.version(t) if t else None
        if v is None:
            continue
        if n in highest and v < highest[n]:
            backwards.append((n, highest[n], v))
        highest[n] = max(highest.get(n, v), v)
    return ts


def converged(pred=lambda t: True, names=None):
    """G.converged, the versions of the tables it looked at watched."""
    ts = G.converged(pred, names or G.nodes)
    watch(G.last)
    return ts


def roles():
    out = {}
    for c in CANDS:
        t = G.table(c)
        if t:
            out[c] = t["role"]
    return out


def kill(name):
    p = masters.pop(name)
    p.kill()
    p.wait()
    nodelib.procs.remove(p)


# --- LAB-RGM active, one digest -----------------------------------------------
ts = wait_for(lambda: converged(names=G.nodes + CANDS), 30)
check(ts is not None and R.group(ts["N1"])["master"] == "LAB-RGM",
      "the nodes and both candidates hold one digest, LAB-RGM the active master")
check(wait_for(lambda: roles() == {"LAB-RGM": "master-active", "LAB-RGM2": "master-standby"}, 10),
      "LAB-RGM says master-active, LAB-RGM2 master-standby (%s)" % roles())
v0 = highest.get("N3")

# --- kill -9 of the active ------------------------------------------------------
# (mutation: master_election.c next_incarnation returning persisted + 1
# alone -- a fresh candidate takes the incarnation the old one had, and the
# versions do not enter a new incarnation)
kill("LAB-RGM")
G.send(2, "during")
check(wait_for(lambda: G.arrived("primary", "during") == 2, 30),
      "with the active master killed, members keep delivering (2 of 2 by Primary)")
ts = wait_for(lambda: converged(lambda t: R.group(t)["master"] == "LAB-RGM2"), 30)
check(ts is not None, "LAB-RGM2 takes over: every node's table names it the master")
check(roles() == {"LAB-RGM2": "master-active"}, "LAB-RGM2 says master-active (%s)" % roles())
v1 = highest.get("N3")
check(v0 and v1 and v1[0] > v0[0], "versions continue upward, a new incarnation (%s -> %s)"
      % (v0, v1))

# --- the old master returns ------------------------------------------------------
masters["LAB-RGM"] = G.master(rgmaster, "LAB-RGM")
ts = wait_for(lambda: converged(lambda t: R.group(t)["master"] == "LAB-RGM",
                                names=G.nodes + CANDS), 30)
check(ts is not None, "the restarted LAB-RGM takes over again after settling; one digest "
      "at every node and candidate")
r = roles()
check(sorted(r.values()) == ["master-active", "master-standby"] and r["LAB-RGM"] == "master-active",
      "every candidate asked: exactly one active (%s)" % r)
v2 = highest.get("N3")
check(v2 and v2 > v1, "versions continue upward (%s -> %s)" % (v1, v2))

# --- no master at all, then Primary fails ------------------------------------------
# N1's own report takes its mail off Primary at once, to Backup's
# bridgehead N2; N2 has not heard (no master), its table routes the mail
# straight back to N1 -- but the mail has been at N1 (its Received: line),
# so split horizon takes the other route N2's table has: Backup, which N2
# delivers itself. (mutations: member.c mm_member_report not applying the
# node's own report to its view -- the mail stays at N1 for Primary;
# qmgr_route.c split_horizon answering false at once -- it waits at N2 and
# goes back to N1, to and fro, and never reaches Backup; the trace not
# read at submit (commit.c) -- the same)
for c in CANDS:
    kill(c)
time.sleep(1)  # the members see the masters gone
p_sink.kill()
p_sink.wait()
nodelib.procs.remove(p_sink)
G.send(3, "alone", via="N1")
check(wait_for(lambda: G.arrived("backup", "alone") == 3, 30),
      "with no master, N1's own report sends its mail to Backup's bridgehead N2, which "
      "delivers it by Backup, not back to N1 (%d of 3)" % G.arrived("backup", "alone"))
ndr = sum(1 for n in G.nodes for line in open(os.path.join(W, n.lower(), "tracking.log"),
                                            errors="replace") if " NDR " in line)
back = sum(1 for line in open(os.path.join(W, "n2", "tracking.log"), errors="replace")
           if 'held="back to sender"' in line and "far" in line)
check(ndr == 0 and back == 0, "no 5.4.6, nothing held at N2 (%d NDR, %d held)" % (ndr, back))

# --- LAB-RGM2 restarted with its --state deleted -----------------------------------
# (mutation: member.c send_snapshot leaving out the bridgeheads that are
# down -- the new master never learns Primary is down. The wall clock in
# the incarnation keeps the versions rising even before the members'
# Hellos are heard.)
shutil.rmtree(os.path.join(W, "state-LAB-RGM2"))
masters["LAB-RGM2"] = G.master(rgmaster, "LAB-RGM2")
ts = wait_for(lambda: converged(lambda t: state(t) == "down" and R.group(t)["master"] == "LAB-RGM2",
                                names=G.nodes + ["LAB-RGM2"]), 30)
check(ts is not None, "the returning master learns Primary is down from N1: every table says "
      "so, one digest")
v3 = highest.get("N3")
check(v3 and v3 > v2, "after --state was deleted versions still go up (%s -> %s)" % (v2, v3))
check(not backwards, "no node was ever seen holding a lower version than before (%s)" % backwards)

p_sink = sink(G.primary, W + "/primary")
check(wait_for(lambda: converged(lambda t: state(t) == "up"), 30) is not None,
      "the smart host back: up in every table")

R.done()
