#!/usr/bin/env python3
"""Tables that agree, with real processes: group Lab (the rgmaster LAB-RGM,
meshnodes N1 and N2, mutual TLS) and group Far, which no master runs --
every process holds the entry its own directory builds (incarnation 0).

Far is edited in the LDIF; N1 reloads before the master; N1 restarts, so
the master sends it a full table; then N2 and the master reload. A directory's
baseline never travels (DESIGN §3), so N1 keeps its own directory's Far
all along, and once the master has reloaded too, every process holds one
digest within one probe interval. The edit is chosen so that, were the
master's stale copy pushed to N1, the equal-version conflict rule would
keep the stale one at N1 -- for ever, since probes compared versions
only.

(mutations: member.c on_push taking entries of incarnation 0, and the
master pushing them (mm_m_push_entries without the filter): N1 holds the
stale Far and never agrees)

usage: routing_agree.py MESHNODE MESHCTL RGMASTER
"""
import hashlib
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grouplib  # noqa: E402
import nodelib  # noqa: E402
import rgmlib as R  # noqa: E402
import routing_lib as rl  # noqa: E402
from nodelib import check, wait_for, workdir  # noqa: E402

meshnode, meshctl, rgmaster = sys.argv[1:4]
W = workdir("rt-agree")
NET = "127.0.73."
G = grouplib.Group(W, meshctl, NET, nodes=2)
FAR = ("\ndn: cn=Far,o=Lab\nobjectClass: mmRoutingGroup\ncn: Far\n"
       "\ndn: cn=FAR-RGM,cn=Far,o=Lab\nobjectClass: mmMaster\ncn: FAR-RGM\n"
       "mmRoutingAddress: %s40:6910\nmmPriority: 10\n"
       "\ndn: cn=F1,cn=Far,o=Lab\nobjectClass: mmServer\ncn: F1\n"
       "mmFqdn: %%s\nmmRoutingAddress: %s41:6911\n"
       "\ndn: cn=SMTP,cn=F1,cn=Far,o=Lab\nobjectClass: mmVirtualServer\ncn: SMTP\n"
       "mmBind: %s41:2525\nmmFqdn: f1.far.test\n" % (NET, NET, NET))
base = open(G.ldif).read()


def write_far(fqdn):
    with open(G.ldif + ".new", "w") as f:
        f.write(base + FAR % fqdn)
    os.rename(G.ldif + ".new", G.ldif)


write_far("f1.far.test")
PROBE = 1000
master = G.master(rgmaster, "LAB-RGM",
                  extra=("--set", "probe_interval_ms=%d" % PROBE, "--set", "ping_interval_ms=100",
                         "--set", "dead_after=5"))
nodes = {n: G.node(meshnode, n) for n in G.nodes}
ALL = ["LAB-RGM"] + G.nodes
check(wait_for(lambda: G.converged(names=ALL), 30) is not None,
      "LAB-RGM, N1 and N2 hold one digest")


def far_bytes(n):
    """N1's Far entry as SPOOL/table holds it (None when not there yet)."""
    try:
        g = rl.table_groups(open(os.path.join(W, n.lower(), "table"), "rb").read())
    except OSError:
        return None
    return rl.encode(g["Far"]) if "Far" in g else None


def log(n):
    return open(os.path.join(W, n + ".log"), errors="replace").read()


def reloads(n):
    return log(n).count("reload: directory")


# an edit of Far whose entry loses the conflict rule to the one before it
old = far_bytes("N1")
chosen = None
for k in range(1, 16):
    write_far("f1-%d.far.test" % k)
    r0 = reloads("N1")
    nodes["N1"].send_signal(signal.SIGHUP)
    wait_for(lambda: reloads("N1") > r0 and far_bytes("N1") != old, 10)
    new = far_bytes("N1")
    if hashlib.sha256(old).digest() > hashlib.sha256(new).digest():
        chosen = k
        break
    old = new
    # this edit would not show it: the master follows, and the next one
    m0 = log("LAB-RGM").count("reload: directory in use")
    master.send_signal(signal.SIGHUP)
    wait_for(lambda: log("LAB-RGM").count("reload: directory in use") > m0, 10)
check(chosen is not None, "an edit of Far whose entry the stale one beats (edit %s)" % chosen)

# N1 restarts: the master sends it its whole table (its Far is the stale one)
nodes["N1"].terminate()
nodes["N1"].wait(20)
nodelib.procs.remove(nodes["N1"])
nodes["N1"] = G.node(meshnode, "N1")
time.sleep(1)
check(far_bytes("N1") == new,
      "after a full push from a master holding the stale Far, N1 holds its own "
      "directory's Far (a baseline never travels)")
# N2 reloads, then the master: every process has the new directory
r2 = reloads("N2")
nodes["N2"].send_signal(signal.SIGHUP)
wait_for(lambda: reloads("N2") > r2, 10)
m0 = log("LAB-RGM").count("reload: directory in use")
master.send_signal(signal.SIGHUP)
wait_for(lambda: log("LAB-RGM").count("reload: directory in use") > m0, 10)
t0 = time.time()
ts = wait_for(lambda: G.converged(names=ALL), 2 * PROBE / 1000 + 2)
check(ts is not None, "the master reloads too: one digest everywhere within a probe interval "
      "(%.1f s)" % (time.time() - t0))
check(ts is not None and R.group(ts["N1"], "Far") == R.group(ts["LAB-RGM"], "Far"),
      "N1 and the master hold the same Far")
pushes = re.findall(r"push: (full, )?(\d+) entries", log("LAB-RGM"))
check(all(int(n) <= 1 for _, n in pushes),
      "the master's pushes carry its own group's entry alone, never Far's baseline (%s)"
      % sorted({int(n) for _, n in pushes}))
done = nodelib.done
done()
