#!/usr/bin/env python3
"""A handshake flood at the masters' 691 listeners (127.0.91.x: candidates
LAB-RGM, priority 100, and LAB-RGM2, 50; nodes N1..N3), from 40 addresses
outside the directory (127.0.92.1 to .40): TCP connections that send a
TLS ClientHello and never go on, each opened again as soon as the master
drops it, at 1,200 attempts a second (floodlib.py). The masters keep the
default dead interval (3 s), which is also how long a handshake may take:
before this change, 40 addresses x 8 handshakes held all 256 slots and
everything new was refused at once.

- An admin (meshctl --connect from 127.0.0.1, outside the directory, with
  the admin certificate) asks the flooded active master for its table five
  times: every time it is answered (a newcomer drops a handshake of a busy
  address);
- the flood turns to the standby LAB-RGM2 and the active master is killed:
  every member reaches LAB-RGM2, and none of its dials there fails (the
  directory's routing addresses have room kept for them).

The attempt rate reached and the admin's times are printed.

Each check names, in "(mutation: ...)", the change to the code it was seen
to fail on.

usage: routing_flood.py MESHNODE MESHCTL RGMASTER
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import floodlib  # noqa: E402
import grouplib  # noqa: E402
import nodelib  # noqa: E402
import rgmlib as R  # noqa: E402
from nodelib import check, wait_for, workdir  # noqa: E402

meshnode, meshctl, rgmaster = sys.argv[1:4]
W = workdir("rt-flood")
G = grouplib.Group(W, meshctl, "127.0.91.", nodes=3,
                   candidates=(("LAB-RGM", 250, 100), ("LAB-RGM2", 251, 50)))
CANDS = ["LAB-RGM", "LAB-RGM2"]
DEFAULT_LIVENESS = ["--set", "ping_interval_ms=1000", "--set", "dead_after=3"]
masters = {c: G.master(rgmaster, c, extra=DEFAULT_LIVENESS) for c in CANDS}
for n in G.nodes:
    G.node(meshnode, n)
SOURCES = floodlib.sources("127.0.92.", 40)
RATE = 1200


def rate_ok(what, result):
    attempts, per_s = result
    print("flood at %s: %d connection attempts, %.0f a second" % (what, attempts, per_s))
    check(per_s >= 800, "the flood at %s ran at 800 attempts a second or more (%.0f)"
          % (what, per_s))


ts = wait_for(lambda: G.converged(lambda t: R.group(t)["master"] == "LAB-RGM",
                                  names=G.nodes + CANDS), 30)
check(ts is not None, "the nodes and both candidates hold one digest, LAB-RGM active")

# --- an admin at the flooded active master ---------------------------------------
# (mutation: net691.c admit() refusing when mm_admit_check says
# MM_ADMIT_EVICT -- a full table refuses the admin at once, "TLS handshake
# failed: closed", exit 69)
flood = floodlib.Flood([G.masters["LAB-RGM"]], SOURCES, rate=RATE)
time.sleep(1.5)  # the slots fill up (and stay full: held 3 s at most)
took, codes = [], []
for _ in range(5):
    t0 = time.time()
    r = subprocess.run([meshctl, "--connect", G.masters["LAB-RGM"], "--tls", G.admin,
                        "--expect", "master:LAB-RGM", "--json", "table"],
                       capture_output=True, text=True, timeout=60)
    took.append(time.time() - t0)
    answered = r.returncode == 0 and json.loads(r.stdout).get("server") == "LAB-RGM"
    codes.append(0 if answered else r.returncode or -1)
rate_ok("LAB-RGM", flood.stop())
print("the admin's answers under the flood took %s s" % ", ".join("%.3f" % t for t in took))
check(codes == [0] * 5, "an admin from outside the directory asks the flooded master 5 times: "
      "answered every time (exit statuses %s; %.3f s at most)" % (codes, max(took)))
check(wait_for(lambda: R.log_has(os.path.join(W, "LAB-RGM.log"),
                                 "TLS handshakes dropped to make room"), 5),
      "... and LAB-RGM reports the handshakes it dropped")

# --- the members at the flooded standby --------------------------------------------
# (mutation: accept_cb as before this change -- mm_admit_check refusing
# instead of MM_ADMIT_EVICT and MM_ADMIT_RESERVED 0: the members' dials of
# LAB-RGM2 are refused while the flood holds every slot)
marks = {n: os.path.getsize(os.path.join(W, n + ".log")) for n in G.nodes}
flood = floodlib.Flood([G.masters["LAB-RGM2"]], SOURCES, rate=RATE)
time.sleep(3)
p = masters.pop("LAB-RGM")
p.kill()
p.wait()
nodelib.procs.remove(p)
t0 = time.time()
ts = wait_for(lambda: G.converged(lambda t: R.group(t)["master"] == "LAB-RGM2"), 40)
reached = time.time() - t0
failed = {}
for n in G.nodes:
    with open(os.path.join(W, n + ".log"), errors="replace") as f:
        f.seek(marks[n])
        failed[n] = re.findall(r'member: connection \d+ to "LAB-RGM2" failed: .*', f.read())
rate_ok("LAB-RGM2", flood.stop())
check(ts is not None, "LAB-RGM killed under the flood at LAB-RGM2: every member reaches "
      "LAB-RGM2, its table names it the master (%.1f s)" % reached)
check(not any(failed.values()), "... and none of the members' dials of LAB-RGM2 failed (%s)"
      % {n: v[:2] for n, v in failed.items() if v})
check(R.table(meshctl, G.masters["LAB-RGM2"], G.admin) is not None,
      "LAB-RGM2 answers an admin once the flood is over")
R.done()
