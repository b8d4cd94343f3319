#!/usr/bin/env python3
"""One routing group with real processes and mutual TLS (certificates from
`meshctl pki`), on 127.0.66.x: the rgmaster LAB-RGM and four meshnodes
N1..N4. Primary (cost 1) is an SMTP connector whose bridgehead is N1,
Backup (cost 10) one whose bridgehead is N2; both serve smtp:*. Mail is
submitted on N3, which is no bridgehead: it goes where the table it
received from the master says.

- every node and the master reach the same digest, under the master's
  incarnation;
- Primary's smart host stops: after the fast glitch retry N1 reports its
  bridgehead down, the master pushes it, and every member's table says
  Primary down; the mail queued for it and new mail go out by Backup;
- the smart host returns: N1's probe reports it up, every table says up,
  and new mail takes Primary again.

Each check names, in "(mutation: ...)", the change to the code it was seen
to fail on.

usage: routing_group.py MESHNODE MESHCTL RGMASTER
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grouplib  # noqa: E402
import nodelib  # noqa: E402
import rgmlib as R  # noqa: E402
from grouplib import state  # noqa: E402
from nodelib import check, sink, wait_for, workdir  # noqa: E402

meshnode, meshctl, rgmaster = sys.argv[1:4]
W = workdir("rt-group")
G = grouplib.Group(W, meshctl, "127.0.66.")
p_sink = sink(G.primary, W + "/primary")
sink(G.backup, W + "/backup")
master = G.master(rgmaster, "LAB-RGM")
for n in G.nodes:
    G.node(meshnode, n)
ALL = ["LAB-RGM"] + G.nodes


def converged(pred=lambda t: True):
    return G.converged(pred, ALL)


def primary_state(t):
    return state(t, "Primary")


send, arrived = G.send, G.arrived


# --- one digest everywhere ----------------------------------------------------
# (mutation: member.c on_push merging none of the pushed entries -- the
# members keep the directory's incarnation-0 view)
ts = wait_for(converged, 30)
check(ts is not None, "the master and N1..N4 answer --connect with one digest, incarnation > 0 "
      "(%s)" % {k: (t or {}).get("digest", "")[:12] for k, t in G.tables(ALL).items()})
if ts:
    check(ts["LAB-RGM"]["role"] == "master-active" and ts["N3"]["role"] == "node"
          and ts["N3"]["server"] == "N3",
          "the answers name who answered: master-active, node N3 (%s %s %s)"
          % (ts["LAB-RGM"]["role"], ts["N3"]["role"], ts["N3"]["server"]))
    check(all(primary_state(t) == "up" for t in ts.values()), "Primary up in every table")

send(3, "first")
check(wait_for(lambda: arrived("primary", "first") == 3, 30),
      "with every connector up, N3's mail leaves by Primary (via N1)")

# --- Primary's smart host stops answering -------------------------------------
# (mutations: member.c mm_member_report not sending the detector's report
# to the master -- only N1 knows, the tables differ; routing.c
# table_changed not calling mm_router_update -- the tables say down, the
# mail waits for Primary)
p_sink.kill()
p_sink.wait()
nodelib.procs.remove(p_sink)
send(3, "second")
ts = wait_for(lambda: converged(lambda t: primary_state(t) == "down"), 30)
check(ts is not None, "Primary down in the master's and every member's table, one digest")
check(wait_for(lambda: arrived("backup", "second") == 3, 30),
      "the mail queued for Primary leaves by Backup (via N2): %d of 3"
      % arrived("backup", "second"))
# a SIGHUP of the master rebuilds the configuration and keeps the live
# state (mutation: master.c mm_master_directory taking the directory's
# entry whole -- Primary "up" again in every table)
master.send_signal(signal.SIGHUP)
time.sleep(1)
check(converged(lambda t: primary_state(t) == "down") is not None,
      "SIGHUP of the master: Primary still down in every table")
send(2, "third")
check(wait_for(lambda: arrived("backup", "third") == 2, 30),
      "new mail from N3 takes Backup while Primary is down")

# --- the smart host returns -----------------------------------------------------
# (mutation: probe.c answering every probe as failed -- Primary stays down)
p_sink = sink(G.primary, W + "/primary")
ts = wait_for(lambda: converged(lambda t: primary_state(t) == "up"), 30)
check(ts is not None, "the probe finds Primary's smart host: up in every table again")
send(2, "fourth")
check(wait_for(lambda: arrived("primary", "fourth") == 2, 30),
      "new mail takes Primary again")
check(arrived("primary", "second") + arrived("backup", "second") == 3,
      "nothing lost, nothing twice: 3 of 3 'second' delivered once")

# --- a member that stops answering ----------------------------------------------
# (mutation: master_members.c mm_m_member_gone not marking the server down
# -- N4 stays up in every table)
def server_state(t, name):
    return next(x["state"] for x in R.group(t)["servers"] if x["name"] == name)


n4 = next(p for p in nodelib.procs if getattr(p, "is_node", False) and "N4" in p.args)
n4.kill()
n4.wait()
nodelib.procs.remove(n4)
rest = ["LAB-RGM", "N1", "N2", "N3"]
check(G.converged(lambda t: True, rest) is not None and
      wait_for(lambda: G.converged(lambda t: server_state(t, "N4") == "down", rest), 30)
      is not None, "N4 killed: the master marks it down after the dead interval, in every table")
G.node(meshnode, "N4")
check(wait_for(lambda: converged(lambda t: server_state(t, "N4") == "up"), 30) is not None,
      "N4 back: up in every table, one digest with N4's own")

# --- the master moves to another address -----------------------------------------
# the operator edits mmRoutingAddress, restarts the master there and sends
# the nodes SIGHUP: they find it, though their saved table names the old
# address (mutation: member.c load_cands without the directory's
# candidates -- the nodes dial 127.0.66.250 for ever)
master.kill()
master.wait()
nodelib.procs.remove(master)
with open(G.ldif) as f:
    text = f.read()
with open(G.ldif, "w") as f:
    f.write(text.replace("127.0.66.250:6910", "127.0.66.249:6910"))
G.masters["LAB-RGM"] = "127.0.66.249:6910"
master = G.master(rgmaster, "LAB-RGM")
for p in [p for p in nodelib.procs if getattr(p, "is_node", False)]:
    p.send_signal(signal.SIGHUP)
check(wait_for(lambda: converged(lambda t: R.group(t)["master"] == "LAB-RGM"), 30) is not None,
      "the master moved to 127.0.66.249: after SIGHUP every node holds its table again")

R.done()
