#!/usr/bin/env python3
"""SPOOL/table under the power-cut harness (docs/durability.md): a node
that has taken its master's table and written it keeps it through a power
cut, so that it starts from the master's entry and not from the
directory's "everything up". 127.0.65.x, insecure (the harness models the
disk, not the network); rgmaster runs outside the harness, the node under
it.

Each check names, in "(mutation: ...)", the change to the code it was seen
to fail on.

usage: routing_powercut.py MESHNODE MESHCTL RGMASTER   (POWERCUT_LIB in the environment)
"""
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import powercut  # noqa: E402
import rgmlib as R  # noqa: E402
import routing_lib as rl  # noqa: E402
from nodelib import check, start, wait_for, workdir  # noqa: E402

meshnode, meshctl, rgmaster = sys.argv[1:4]
W = workdir("rt-powercut")
ldif = os.path.join(W, "lab.ldif")
rl.org(ldif, "127.0.65.1:2525", "127.0.65.3:25250", master="127.0.65.250:6910")
R.master(rgmaster, ldif, "LAB-RGM", os.path.join(W, "rgm"))
root = os.path.join(W, "disk")
os.mkdir(root)
h = powercut.Harness(root, powercut.find_lib(meshnode), ignore=("tracking.log",))
spool = os.path.join(root, "n1")
table = os.path.join(spool, "table")
logpath = os.path.join(W, "N1.log")

with open(logpath, "ab") as log:
    p = start([meshnode, "--directory", "ldif:" + ldif, "--server", "N1", "--spool", spool,
               "--set", "insecure=1", "--set", "master_retry_min_ms=100",
               "--set", "master_retry_max_ms=300"], ready="ready", stderr=log,
              env=h.env(meshnode))


def master_version():
    with open(logpath, errors="replace") as f:
        m = re.findall(r"routing: table digest [0-9a-f]+, group version \((\d+), (\d+), (\d+), "
                       r"(\d+)\)", f.read())
    vs = [tuple(int(x) for x in v) for v in m if v[0] != "0"]
    return vs[-1] if vs else None


v = wait_for(master_version, 20)
check(v is not None, "N1 takes its master's table (version %s)" % (v,))
time.sleep(1)  # the write goes on the loop's next turn
p.kill()
p.wait()
stats = h.cut()
g = rl.table_groups(open(table, "rb").read()) if os.path.exists(table) else {}
got = rl.version(g["Lab"]) if "Lab" in g else None
check(got == v, "after a power cut SPOOL/table holds the master's entry %s (%s; %s) "
      "(mutations: write_table() without the fsync of the spool directory, or without the "
      "fsync of the file -- no table after the cut)" % (v, got, dict(stats)))
check(not os.path.exists(table + ".new"), "no temporary file is left")
R.done()
