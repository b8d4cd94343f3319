#!/usr/bin/env python3
"""Reroute on a directory change (SIGHUP), with real processes: queued mail
follows a new smart host, a new TLS policy and a frozen queue stays as the
operator left it; queues are told apart by next-hop identity, not by name.
Each check names the mutation of the code it was seen to catch.

usage: meshnode_reroute.py MESHNODE MESHCTL MKORG SCHEMA
"""
import json
import os
import re
import signal
import smtplib
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodelib import check, done, files, node, sink, wait_for, workdir  # noqa

meshnode, meshctl, mkorg = sys.argv[1:4]
W = workdir("reroute")
N1, N2 = ("127.0.22.1", 2525), ("127.0.22.2", 2525)
OLD, NEW = "127.0.22.3:25250", "127.0.22.4:25250"
ldif = os.path.join(W, "lab.ldif")


FAR = """
dn: cn=Far,o=Lab
objectClass: mmRoutingGroup
cn: Far

dn: cn=FAR-RGM,cn=Far,o=Lab
objectClass: mmMaster
cn: FAR-RGM
mmRoutingAddress: 127.0.22.9:6910
mmPriority: 100

dn: cn=Internet,cn=Far,o=Lab
objectClass: mmServer
cn: Internet
mmFqdn: internet.far.test
mmRoutingAddress: 127.0.22.8:6911

dn: cn=SMTP,cn=Internet,cn=Far,o=Lab
objectClass: mmVirtualServer
cn: SMTP
mmBind: 127.0.22.8:2525

dn: cn=Lab-Far,cn=Lab,o=Lab
objectClass: mmConnector
cn: Lab-Far
mmConnectorType: routing-group
mmCost: 10
mmLocalBridgehead: cn=SMTP,cn=N1,cn=Lab,o=Lab
mmTargetGroup: cn=Far,o=Lab
mmRemoteBridgehead: cn=SMTP,cn=Internet,cn=Far,o=Lab

dn: uid=dave,o=Lab
objectClass: inetOrgPerson
objectClass: mmRecipient
uid: dave
cn: dave
sn: dave
mail: dave@example.test
mmHomeServer: cn=Internet,cn=Far,o=Lab
"""


def write_org(smart, tls="none", far=False):
    subprocess.run([sys.executable, mkorg, ldif + ".new", "--bind", "%s:%d" % N1, "--second",
                    "%s:%d" % N2, "--smarthost", smart, "--relay-first", "127.0.0.0/8"],
                   check=True)
    text = open(ldif + ".new").read().replace("mmTlsPolicy: none", "mmTlsPolicy: " + tls)
    open(ldif + ".new", "w").write(text + (FAR if far else ""))
    os.rename(ldif + ".new", ldif)


def ctl(*args):
    r = subprocess.run([meshctl, "--spool", s1, "--json"] + list(args), capture_output=True,
                       text=True)
    return r.returncode, (json.loads(r.stdout) if r.returncode == 0 and r.stdout else
                          r.stdout + r.stderr)


def queues(name=None):
    rc, v = ctl("queues")
    qs = v["queues"] if rc == 0 else []
    return [q for q in qs if name is None or q["name"] == name]


def send(rcpt, n=1, subject="x"):
    c = smtplib.SMTP(*N1)
    for i in range(n):
        c.sendmail("s@example.org", [rcpt], "Subject: %s %d\r\n\r\nbody\r\n" % (subject, i))
    c.quit()


def track():
    return open(s1 + "/tracking.log").read()


# N1 relays to the smart host OLD, which is down: mail waits in Retry
write_org(OLD)
s1 = W + "/n1"
n1 = node(meshnode, ldif, "N1", s1, "--set", "retry_min_ms=600000", "--set",
          "glitch_retry_count=0", "--set", "connect_timeout_ms=2000")
send("far@example.net", 2, "old")
q = wait_for(lambda: next((x for x in queues("Internet") if x["state"] == "Retry" and
                           x["messages"] == 2), None))
check(q is not None, "two messages wait for the smart host %s" % OLD)
old_id = q["id"] if q else None

# --- a new smart host: the queued mail moves -------------------------------
# (mutation: link queues keyed by name, qm_route.c resolve() building the key
# without the address: the two messages stayed queued for OLD)
sink(NEW, W + "/new")
write_org(NEW)
n1.send_signal(signal.SIGHUP)
check(wait_for(lambda: len(files(W + "/new")) == 2, 20),
      "after SIGHUP with a new mmSmartHost the 2 queued messages go to it (%d)" %
      len(files(W + "/new")))
check(wait_for(lambda: re.search(r"REROUTED \S+ to=<far@example.net> .*old_next_hop=%s "
                                r".*next_hop=%s" % (re.escape(OLD), re.escape(NEW)), track())),
      "tracking log: REROUTED names the old and the new next hop")
sink(OLD, W + "/old")
send("far@example.net", 1, "after")
check(wait_for(lambda: len(files(W + "/new")) == 3, 20), "new mail goes to the new smart host")
time.sleep(0.5)
check(len(files(W + "/old")) == 0, "nothing reaches the old smart host (%d)" %
      len(files(W + "/old")))
ids = [x["id"] for x in queues("Internet")]
check(old_id not in ids or len(ids) == 2, "the new next hop is a queue of its own (%s)" % ids)

# --- a new TLS policy is followed by mail already queued -------------------
# (mutation: qm_refresh_link not called on a table change, the queue keeps
# "none": the message left in clear text)
third = "127.0.22.5:25250"
write_org(third)
n1.send_signal(signal.SIGHUP)
time.sleep(0.5)
send("tls@example.net", 1, "tls")
check(wait_for(lambda: any(x["state"] == "Retry" and x["next_hop"] == third
                           for x in queues("Internet"))), "mail waits for %s" % third)
write_org(third, tls="required")
n1.send_signal(signal.SIGHUP)
time.sleep(0.5)
sink(third, W + "/third")  # smtp-sink offers no STARTTLS
q3 = next((x for x in queues("Internet") if x["next_hop"] == third), None)
if q3:
    ctl("retry", q3["id"])
err = wait_for(lambda: next((x["last_error"] for x in queues("Internet")
                             if x["next_hop"] == third and x["last_error"] and
                             "4.7.4" in x["last_error"]), None), 15)
check(err is not None, "mmTlsPolicy required after SIGHUP: the queued message fails closed "
      "(%s)" % err)
check(len(files(W + "/third")) == 0, "and nothing left in clear text")

# --- a frozen queue stays frozen -------------------------------------------
# (mutation: mm_qm_table_changed rerouting frozen queues)
fourth = "127.0.22.6:25250"
write_org(fourth)
n1.send_signal(signal.SIGHUP)
time.sleep(0.5)
send("frozen@example.net", 2, "frozen")
q4 = wait_for(lambda: next((x for x in queues("Internet") if x["next_hop"] == fourth and
                            x["messages"] >= 2), None))
check(q4 is not None, "messages for %s" % fourth)
held = q4["messages"] if q4 else None
if q4:
    ctl("freeze", q4["id"])
write_org(NEW)
n1.send_signal(signal.SIGHUP)
time.sleep(1)
q4 = next((x for x in queues() if q4 and x["id"] == q4["id"]), None)
check(q4 is not None and q4["state"] == "Frozen" and q4["messages"] == held,
      "after SIGHUP a frozen queue keeps its mail and stays frozen (%s)" % q4)

# --- a server and a connector with one cn: two queues ----------------------
# (mutation: the key built from the name alone: one queue "Internet")
write_org(OLD, far=True)
n1.send_signal(signal.SIGHUP)
time.sleep(0.5)
for p in list(__import__("nodelib").procs):  # stop the smart host OLD
    if p.args and "smtp-sink" in p.args[0] and OLD in p.args:
        p.kill()
send("dave@example.test", 1, "to the server")  # server Internet of Far is not running
send("out@example.net", 1, "to the connector")
both = wait_for(lambda: (lambda l: l if len(l) == 2 else None)(
    [x for x in queues("Internet") if x["messages"] == 1 and
     x["next_hop"] in ("127.0.22.8:2525", OLD)]), 20)
check(both is not None and both[0]["id"] != both[1]["id"],
      "server Internet and connector Internet: two queues, two ids (%s)" % both)
check(both is not None and {x["connector"] for x in both} == {"Lab-Far", "Internet"},
      "each link queue knows the connector it serves")
r = subprocess.run([meshctl, "--spool", s1, "queue", "Internet"], capture_output=True,
                   text=True)
check(r.returncode == 64 and all(x["id"] in r.stderr for x in (both or [])),
      "meshctl queue Internet matches several queues: exit 64 and they are listed (%d: %s)" %
      (r.returncode, r.stderr.strip()))
if both:
    r = subprocess.run([meshctl, "--spool", s1, "--json", "queue", both[0]["id"]],
                       capture_output=True, text=True)
    check(r.returncode == 0 and json.loads(r.stdout)["id"] == both[0]["id"],
          "meshctl queue ID names exactly one")
r = subprocess.run([meshctl, "--spool", s1, "queue", "nothing-here"], capture_output=True,
                   text=True)
check(r.returncode == 65, "an unknown queue: exit 65")

# --- counts: messages are messages ------------------------------------------
# (mutation: "messages" counting recipients)
c = smtplib.SMTP(*N1)
c.sendmail("s@example.org", ["a1@example.net", "a2@example.net"], "Subject: two\r\n\r\nx\r\n")
c.quit()
q = wait_for(lambda: next((x for x in queues("Internet") if x["next_hop"] == OLD and
                           x["recipients"] == 3), None))
check(q is not None and q["messages"] == 2,
      "one message with two recipients counts one message, two recipients (%s)" % q)
done()
