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
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nodelib  # noqa: E402
import rgmlib as R  # noqa: E402
from nodelib import check, files, node, sink, wait_for, workdir  # noqa: E402

meshnode, meshctl, rgmaster = sys.argv[1:4]
W = workdir("rt-group")
NET = "127.0.66."
MASTER = NET + "250"
NODES = ["N1", "N2", "N3", "N4"]
IP = {n: NET + str(i + 1) for i, n in enumerate(NODES)}
PRIMARY, BACKUP = NET + "21:25250", NET + "22:25250"


def write_org(path):
    w = []
    w.append("dn: o=Lab\nobjectClass: mmOrganization\no: Lab\n")
    w.append("dn: cn=Lab,o=Lab\nobjectClass: mmRoutingGroup\ncn: Lab\n")
    w.append("dn: cn=LAB-RGM,cn=Lab,o=Lab\nobjectClass: mmMaster\ncn: LAB-RGM\n"
             "mmRoutingAddress: %s:6910\nmmPriority: 100\n" % MASTER)
    for n in NODES:
        w.append("dn: cn=%s,cn=Lab,o=Lab\nobjectClass: mmServer\ncn: %s\nmmFqdn: %s.lab.test\n"
                 "mmRoutingAddress: %s:6911\n" % (n, n, n.lower(), IP[n]))
        w.append("dn: cn=SMTP,cn=%s,cn=Lab,o=Lab\nobjectClass: mmVirtualServer\ncn: SMTP\n"
                 "mmBind: %s:2525\nmmFqdn: %s.lab.test\nmmRelayAllow: 127.0.0.0/8\n"
                 % (n, IP[n], n.lower()))
    for name, bh, smart, cost in (("Primary", "N1", PRIMARY, 1), ("Backup", "N2", BACKUP, 10)):
        host, port = smart.rsplit(":", 1)
        w.append("dn: cn=%s,cn=Lab,o=Lab\nobjectClass: mmConnector\ncn: %s\n"
                 "mmConnectorType: smtp\nmmCost: %d\n"
                 "mmLocalBridgehead: cn=SMTP,cn=%s,cn=Lab,o=Lab\n"
                 "mmAddressSpace: smtp:* %d\nmmSmartHost: [%s]:%s\nmmTlsPolicy: none\n"
                 % (name, name, cost, bh, cost, host, port))
    w.append("dn: cn=Policy,o=Lab\nobjectClass: mmRecipientPolicy\ncn: Policy\n"
             "mmAuthoritativeDomain: example.test\n")
    with open(path, "w") as f:
        f.write("\n".join(w))


ldif = os.path.join(W, "lab.ldif")
write_org(ldif)
pki = R.Pki(meshctl, ldif, W)
pki.issue(*NODES, "LAB-RGM", "admin")
admin = pki.dir("admin")

FASTNODE = ["--set", "glitch_retry_count=1", "--set", "glitch_retry_interval_ms=100",
            "--set", "down_probe_interval_ms=100", "--set", "retry_min_ms=200",
            "--set", "connect_timeout_ms=1000", "--set", "ping_interval_ms=100",
            "--set", "dead_after=5", "--set", "master_retry_min_ms=100",
            "--set", "master_retry_max_ms=300"]

p_sink = sink(PRIMARY, W + "/primary")
sink(BACKUP, W + "/backup")
R.master(rgmaster, ldif, "LAB-RGM", W + "/rgm", tls=pki.dir("LAB-RGM"))
for n in NODES:
    node(meshnode, ldif, n, W + "/" + n.lower(), "--tls", pki.dir(n), *FASTNODE)


def tables():
    """Every daemon's live table: {name: JSON or None}."""
    out = {"LAB-RGM": R.table(meshctl, MASTER + ":6910", admin)}
    for n in NODES:
        out[n] = R.table(meshctl, IP[n] + ":6911", admin)
    return out


def converged(pred=lambda t: True):
    """The tables when every daemon answers with one digest, a Lab entry
    of the master's incarnation, and pred holds for each."""
    ts = tables()
    if any(t is None for t in ts.values()):
        return None
    if len({t["digest"] for t in ts.values()}) != 1:
        return None
    if any((R.version(t) or (0,))[0] == 0 or not pred(t) for t in ts.values()):
        return None
    return ts


def primary_state(t):
    g = R.group(t)
    return next(c["state"] for c in g["connectors"] if c["name"] == "Primary")


def send(n, subject, via="N3"):
    c = smtplib.SMTP(IP[via], 2525)
    for i in range(n):
        c.sendmail("s@example.test", ["far%d@example.net" % i],
                   "Subject: %s %d\r\n\r\nbody\r\n" % (subject, i))
    c.quit()


def arrived(d, subject):
    return sum(1 for f in files(d) if ("Subject: " + subject) in open(f, errors="replace").read())


# --- one digest everywhere ----------------------------------------------------
# (mutation: member.c on_push merging none of the pushed entries -- the
# members keep the directory's incarnation-0 view)
ts = wait_for(converged, 30)
check(ts is not None, "the master and N1..N4 answer --connect with one digest, incarnation > 0 "
      "(%s)" % {k: (t or {}).get("digest", "")[:12] for k, t in tables().items()})
if ts:
    check(ts["LAB-RGM"]["role"] == "master-active" and ts["N3"]["role"] == "node"
          and ts["N3"]["server"] == "N3",
          "the answers name who answered: master-active, node N3 (%s %s %s)"
          % (ts["LAB-RGM"]["role"], ts["N3"]["role"], ts["N3"]["server"]))
    check(all(primary_state(t) == "up" for t in ts.values()), "Primary up in every table")

send(3, "first")
check(wait_for(lambda: arrived(W + "/primary", "first") == 3, 30),
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
check(wait_for(lambda: arrived(W + "/backup", "second") == 3, 30),
      "the mail queued for Primary leaves by Backup (via N2): %d of 3"
      % arrived(W + "/backup", "second"))
send(2, "third")
check(wait_for(lambda: arrived(W + "/backup", "third") == 2, 30),
      "new mail from N3 takes Backup while Primary is down")

# --- the smart host returns -----------------------------------------------------
# (mutation: probe.c answering every probe as failed -- Primary stays down)
p_sink = sink(PRIMARY, W + "/primary")
ts = wait_for(lambda: converged(lambda t: primary_state(t) == "up"), 30)
check(ts is not None, "the probe finds Primary's smart host: up in every table again")
send(2, "fourth")
check(wait_for(lambda: arrived(W + "/primary", "fourth") == 2, 30),
      "new mail takes Primary again")
check(arrived(W + "/primary", "second") + arrived(W + "/backup", "second") == 3,
      "nothing lost, nothing twice: 3 of 3 'second' delivered once")

R.done()
