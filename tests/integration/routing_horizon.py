#!/usr/bin/env python3
"""Split horizon with real processes and default settings, no master: four
servers whose saved tables (SPOOL/table, as a master left them) disagree,
as they do when connectors fail while no master is up to tell the others.
Each node knows its own connectors are down; the others still think them
up.

- two.test, two servers: P2 by N1 (cost 1, down, N1 knows), S2 by N2
  (cost 5, works). N1 sends to N2, whose table sends straight back to N1:
  split horizon takes N2's other route, S2, at once.
- three.test, a loop through three: P3 by N1 (1), Q3 by N2 (5), R3 by N3
  (10), all down, each known only to its bridgehead and N2 knowing P3 too;
  F3 by N4 (20) works. N1 -> N2 -> N3, whose table says P3 by N1: the
  message's trace names N1, so N3 takes F3 by N4.
- none.test, no working path: A by N1, B by N2, both down, each known
  only to its bridgehead. The message is held ("back to sender") and
  offered back with a growing hold, never bounced while watched.

Every check names the mutation it was seen to catch.

usage: routing_horizon.py MESHNODE MESHCTL MKORG SCHEMA [--watch SECONDS]

--watch: how long the no-path message is watched (20 s in the test suite;
bench/horizon_soak.sh watches 10 minutes).
"""
import os
import re
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import routing_lib as rl  # noqa: E402
from nodelib import check, done, files, node, sink, wait_for, workdir  # noqa: E402

meshnode, meshctl = sys.argv[1:3]
WATCH = int(sys.argv[sys.argv.index("--watch") + 1]) if "--watch" in sys.argv else 20
W = workdir("rt-horizon")
NET = "127.0.71."
NODES = ["N1", "N2", "N3", "N4"]
IP = {n: NET + str(i + 1) for i, n in enumerate(NODES)}
DEAD = NET + "30"  # nothing listens there: every smart host that is down
# connector: (bridgehead, cost, domain, works)
CONNECTORS = {"P2": ("N1", 1, "two.test", False), "S2": ("N2", 5, "two.test", True),
              "P3": ("N1", 1, "three.test", False), "Q3": ("N2", 5, "three.test", False),
              "R3": ("N3", 10, "three.test", False), "F3": ("N4", 20, "three.test", True),
              "A": ("N1", 1, "none.test", False), "B": ("N2", 5, "none.test", False)}
# what each node's saved table holds down (its own, and N2 also P3)
KNOWS_DOWN = {"N1": ["P2", "P3", "A"], "N2": ["Q3", "P3", "B"], "N3": ["R3"], "N4": []}


def write_org(path):
    w = ["dn: o=Lab\nobjectClass: mmOrganization\no: Lab\n",
         "dn: cn=Lab,o=Lab\nobjectClass: mmRoutingGroup\ncn: Lab\n",
         "dn: cn=LAB-RGM,cn=Lab,o=Lab\nobjectClass: mmMaster\ncn: LAB-RGM\n"
         "mmRoutingAddress: %s:6910\nmmPriority: 100\n" % DEAD]
    for n in NODES:
        w.append("dn: cn=%s,cn=Lab,o=Lab\nobjectClass: mmServer\ncn: %s\nmmFqdn: %s.lab.test\n"
                 "mmRoutingAddress: %s:6911\n" % (n, n, n.lower(), IP[n]))
        w.append("dn: cn=SMTP,cn=%s,cn=Lab,o=Lab\nobjectClass: mmVirtualServer\ncn: SMTP\n"
                 "mmBind: %s:2525\nmmFqdn: %s.lab.test\nmmRelayAllow: 127.0.0.0/8\n"
                 % (n, IP[n], n.lower()))
    for name, (bh, cost, domain, works) in sorted(CONNECTORS.items()):
        smart = "%s:2600" % IP[bh] if works else DEAD + ":2600"
        w.append("dn: cn=%s,cn=Lab,o=Lab\nobjectClass: mmConnector\ncn: %s\n"
                 "mmConnectorType: smtp\nmmCost: %d\nmmLocalBridgehead: cn=SMTP,cn=%s,cn=Lab,o=Lab\n"
                 "mmAddressSpace: smtp:%s %d\nmmSmartHost: [%s]:%s\nmmTlsPolicy: none\n"
                 % ((name, name, cost, bh, domain, cost) + tuple(smart.rsplit(":", 1))))
    w.append("dn: cn=Policy,o=Lab\nobjectClass: mmRecipientPolicy\ncn: Policy\n"
             "mmAuthoritativeDomain: example.test\n")
    with open(path, "w") as f:
        f.write("\n".join(w))


ldif = os.path.join(W, "lab.ldif")
write_org(ldif)
sink(IP["N2"] + ":2600", W + "/s2")
sink(IP["N4"] + ":2600", W + "/f3")


def spool(n):
    return os.path.join(W, n.lower())


def start(n):
    # default settings: only the routing engine without TLS (no PKI here)
    return node(meshnode, ldif, n, spool(n), "--set", "insecure=1")


# each node writes SPOOL/table at its first start; then its table is made
# what a master would have left it (incarnation 5), and it starts again
procs = {n: start(n) for n in NODES}
for n in NODES:
    procs[n].terminate()
    procs[n].wait(20)
for n in NODES:
    table = os.path.join(spool(n), "table")
    g = rl.table_groups(open(table, "rb").read())
    rl.set_version(g["Lab"], 5, 1, 1, 0)
    for c in KNOWS_DOWN[n]:
        rl.mark_bridgehead(g["Lab"], c, CONNECTORS[c][0], "SMTP")
    with open(table + ".test", "wb") as f:
        f.write(rl.table_bytes(g))
    os.rename(table + ".test", table)
procs = {n: start(n) for n in NODES}


def send(rcpt, subject):
    c = smtplib.SMTP(IP["N1"], 2525)
    c.sendmail("s@example.org", [rcpt], "Subject: %s\r\n\r\nbody\r\n" % subject)
    c.quit()


def arrived(d, subject):
    return sum(1 for f in files(W + "/" + d)
               if ("Subject: " + subject) in open(f, errors="replace").read())


def tracking(n):
    try:
        return open(os.path.join(spool(n), "tracking.log"), errors="replace").read()
    except FileNotFoundError:
        return ""


def ndrs():
    return sum(tracking(n).count(" NDR ") for n in NODES)


# --- two servers -----------------------------------------------------------------
# (mutation: qmgr_route.c split_horizon answering false at once -- N2 holds
# the mail and sends it back to N1, which sends it to N2 again: never by S2)
for i in range(3):
    send("x%d@two.test" % i, "two %d" % i)
check(wait_for(lambda: arrived("s2", "two") == 3, 30),
      "two servers: N1 -> N2, whose table says P2 by N1; N2 delivers by S2 instead (%d of 3)"
      % arrived("s2", "two"))
check('held="back to sender"' not in tracking("N2"), "... nothing held at N2")

# --- a loop through three servers -------------------------------------------------
# (mutation: commit.c not reading the trace (m->nvia = 0): N3 knows only its
# client N2, sends the mail to N1, N1 to N2, N2 to N3 ... until the hop
# count ends it with 5.4.6)
for i in range(3):
    send("y%d@three.test" % i, "three %d" % i)
check(wait_for(lambda: arrived("f3", "three") == 3, 30),
      "three servers: N1 -> N2 -> N3, whose table says P3 by N1; the trace names N1 and N2, "
      "so N3 takes F3 by N4 (%d of 3)" % arrived("f3", "three"))


def n3_hops():
    return re.findall(r"ROUTED \S+ to=<y0@three.test>.* next_hop=(\S+)", tracking("N3"))


wait_for(n3_hops, 10)
check(n3_hops() == [IP["N4"] + ":2525"] and ndrs() == 0,
      "N3 routed it once, to N4; no NDR (%s)" % n3_hops())

# --- no working path: held, offered back, never bounced ----------------------------
# (mutation: qmgr_route.c back_hold_for returning 0 -- the message goes to
# and fro without a pause, and the hop count ends it with 5.4.6 in
# milliseconds)
send("z@none.test", "none")
check(wait_for(lambda: 'held="back to sender"' in tracking("N2"), 30),
      "no working path: N2 holds the message (back to sender) rather than bounce it")
time.sleep(WATCH)  # the holds at the default reroute_hold_ms: 5 s, 10 s, 10 s, 20 s...
held = sum(tracking(n).count('to=<z@none.test> queue="Messages pending reroute"')
           for n in NODES)
# the hops a hold schedule of 5 s doubling per pass through each server
# allows in WATCH seconds, and some room
most = 2 + sum(1 for k in range(1, 15) if 5 * (2 ** ((k + 1) // 2 - 1)) * 1 <= WATCH)
check(ndrs() == 0 and 2 <= held <= max(6, 2 * most),
      "%d s later: no NDR at all, handed to and fro %d times, held each time" % (WATCH, held))
done()
