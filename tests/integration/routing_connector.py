#!/usr/bin/env python3
"""The connector-state detector fed by real deliveries, without a master:
N1 is the bridgehead of two SMTP connectors for smtp:*, Primary (a smart
host that is an smtp-sink the test starts and stops) and Backup (costlier,
another sink). When Primary's smart host stops answering, N1 reports its
bridgehead down after the glitch retries and -- since a node applies its
own reports at once -- its queued and new mail goes to Backup; when the
smart host answers a probe again N1 reports it up and new mail takes
Primary again. The node runs with --set insecure=1 and its master's
routing address has nothing listening: it keeps delivering all along. Each
check names the mutation of the code it was seen to catch.

usage: routing_connector.py MESHNODE MESHCTL MKORG SCHEMA
"""
import json
import os
import re
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nodelib  # noqa: E402
import routing_lib as rl  # noqa: E402
from nodelib import check, done, files, node, port_open, sink, wait_for, workdir  # noqa: E402

meshnode, meshctl = sys.argv[1:3]
W = workdir("rt-conn")
N1 = ("127.0.60.1", 2525)
PRIMARY, BACKUP = "127.0.60.3:25250", "127.0.60.4:25250"
ldif = os.path.join(W, "lab.ldif")
rl.org(ldif, "%s:%d" % N1, PRIMARY, BACKUP, master="127.0.60.1:6910")
s1 = W + "/n1"
log = os.path.join(W, "N1.log")


def logtext():
    return open(log, errors="replace").read()


def send(n, subject):
    c = smtplib.SMTP(*N1)
    for i in range(n):
        c.sendmail("s@example.org", ["far%d@example.net" % i],
                   "Subject: %s %d\r\n\r\nbody\r\n" % (subject, i))
    c.quit()


def arrived(d, subject):
    return sum(1 for f in files(d) if ("Subject: " + subject) in open(f, errors="replace").read())


def stop(p):
    p.kill()
    p.wait()
    nodelib.procs.remove(p)


def reports(what):
    return re.findall(r'connector "Primary": bridgehead N1/SMTP reported %s' % what, logtext())


p_sink = sink(PRIMARY, W + "/primary")
sink(BACKUP, W + "/backup")
n1 = node(meshnode, ldif, "N1", s1, "--set", "insecure=1", "--set", "glitch_retry_count=1",
          "--set", "glitch_retry_interval_ms=100", "--set", "down_probe_interval_ms=100",
          "--set", "retry_min_ms=200", "--set", "connect_timeout_ms=1000",
          "--set", "master_retry_min_ms=200", "--set", "master_retry_max_ms=400")

# the engine is on: 691 on N1's routing address, the master dialled
check(port_open("127.0.60.1", 6911), "N1 listens on its mmRoutingAddress 127.0.60.1:6911")
check(wait_for(lambda: re.search(r"member: connection \d+ to \"LAB-RGM\" failed", logtext())),
      "N1 dials its master candidate LAB-RGM (nothing listens there)")
table0 = open(s1 + "/table", "rb").read()

send(2, "first")
check(wait_for(lambda: arrived(W + "/primary", "first") == 2),
      "with every connector up, mail goes to Primary (the cheaper)")

# --- Primary's smart host stops answering ------------------------------------
stop(p_sink)
send(3, "during")
# (mutation: routing.c links_cb not calling mm_connstate_delivery: no down,
# the mail waited for Primary)
check(wait_for(lambda: reports("down"), 15),
      "after the glitch retry N1 reports its bridgehead on Primary down (log line)")
check(re.search(r'connector Primary: target 127\.0\.60\.3:25250 failed \(1 of 1 glitch '
                r'retries\)', logtext()) is not None,
      "the first failure began the glitch retry (1 of 1)")
# (mutation: routing.c drain() not calling mm_member_report: the report was
# logged but the node's routing did not change, the mail stayed queued for
# Primary)
check(wait_for(lambda: arrived(W + "/backup", "during") == 3, 20),
      "the mail queued for Primary moves to Backup and is delivered (%d of 3)" %
      arrived(W + "/backup", "during"))
check(wait_for(lambda: re.search(r"REROUTED \S+ to=<far\d@example.net> .*old_next_hop="
                                r"127\.0\.60\.3:25250 .*next_hop=127\.0\.60\.4:25250",
                                open(s1 + "/tracking.log").read())),
      "tracking: REROUTED from Primary's smart host to Backup's")
check(open(s1 + "/table", "rb").read() == table0,
      "SPOOL/table is not changed by the node's own report (no master issued anything)")

# the node's view over 691 (insecure: Hello names the admin)
c = rl.Conn("127.0.60.1:6911")
check(c.admin("admin") is not None, "691: an admin Hello is answered with the node's Hello")
st, js = c.ask("table", "json") or (None, "")
view = json.loads(js) if st == 0 else {}
conns = {x["name"]: x for g in view.get("groups", []) for x in g["connectors"]}
check(view.get("server") == "N1" and view.get("role") == "node" and
      conns.get("Primary", {}).get("state") == "down" and
      conns.get("Primary", {}).get("local_bridgeheads", [{}])[0].get("state") == "down" and
      conns.get("Backup", {}).get("state") == "up",
      "Query table: the node's view has Primary and its bridgehead down, Backup up")
st, js = c.ask("route", "json", "someone@example.net") or (None, "")
r = json.loads(js) if st == 0 else {}
check(r.get("from") == "N1" and r.get("connectors") == ["Backup"] and
      (r.get("next_hop") or {}).get("address") == BACKUP,
      "Query route: someone@example.net goes over Backup (%s)" % js.strip())
c.close()

send(2, "while-down")
check(wait_for(lambda: arrived(W + "/backup", "while-down") == 2),
      "new mail goes to Backup while Primary is down")
check(arrived(W + "/primary", "while-down") == 0, "and none waits for Primary")

# --- Primary answers again ------------------------------------------------------
p_sink = sink(PRIMARY, W + "/primary")
# (mutation: probe.c answering a session that got through EHLO as a
# failure: Primary was never reported up)
check(wait_for(lambda: reports("up"), 15),
      "a probe gets through EHLO: N1 reports its bridgehead on Primary up")
check(re.search(r"connector Primary: probe of 127\.0\.60\.3:25250 worked", logtext()),
      "the probe is logged")
send(2, "after")
check(wait_for(lambda: arrived(W + "/primary", "after") == 2, 20),
      "new mail takes Primary again (%d of 2)" % arrived(W + "/primary", "after"))
check(len(reports("down")) == 1 and len(reports("up")) == 1,
      "one down and one up reported (%d, %d)" % (len(reports("down")), len(reports("up"))))
check("no master connected; this node's own routing only" in logtext(),
      "the reports say no master heard them")
check(n1.poll() is None, "N1 runs on with no master reachable")
done()
