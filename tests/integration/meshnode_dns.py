#!/usr/bin/env python3
"""Delivery by MX through c-ares against a real dnsmasq: an MX record, a
domain without MX (implicit MX), a first MX that is down (the next one
takes the mail), a null MX (5.1.10), a domain that does not exist (5.4.4)
and one whose DNS times out (deferred with 4.4.3).

usage: meshnode_dns.py MESHNODE MESHCTL MKORG SCHEMA
"""
import json
import os
import smtplib
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodelib import check, done, files, maildir, node, sink, start, wait_for, workdir  # noqa

meshnode, meshctl, mkorg = sys.argv[1:4]
W = workdir("dns")
N1 = ("127.0.16.1", 2525)
DNS = "127.0.16.53"
ldif = os.path.join(W, "lab.ldif")
subprocess.run([sys.executable, mkorg, ldif, "--bind", "%s:%d" % N1, "--internet-mx",
                "--relay", "127.0.0.0/8"], check=True)
start(["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--user=nobody",
       "--port=5353", "--listen-address=" + DNS, "--bind-interfaces", "--no-resolv",
       "--no-hosts", "--local=/test/",
       "--mx-host=mx.test,mail.mx.test,10", "--host-record=mail.mx.test,127.0.16.3",
       "--host-record=nomx.test,127.0.16.4",
       "--mx-host=backup.test,dead.backup.test,10", "--mx-host=backup.test,live.backup.test,20",
       # an exchanger c-ares answers inside ares_query (a .onion name):
       # dns.c must not touch its lookup after that answer freed it
       "--mx-host=onion.test,mx.onion,10",
       "--host-record=dead.backup.test,127.0.16.9", "--host-record=live.backup.test,127.0.16.4",
       "--dns-rr=nullmx.test,15,000000",
       "--mx-host=v6.test,mail.v6.test,10", "--host-record=mail.v6.test,::1",
       "--server=/timeout.test/127.0.16.53#9"], stderr=subprocess.DEVNULL)
sink("127.0.16.3:25", W + "/mx")
sink("127.0.16.4:25", W + "/plain")
sink("[::1]:25", W + "/v6")
s1 = W + "/n1"
node(meshnode, ldif, "N1", s1, "--dns", DNS + ":5353", "--set", "retry_min_ms=300",
     "--set", "glitch_retry_interval_ms=300",
     "--set", "retry_jitter_pct=0", "--set", "connect_timeout_ms=2000")

c = smtplib.SMTP(*N1)
c.sendmail("alice@example.test", ["a@mx.test"], "Subject: mx\r\n\r\nx\r\n")
c.sendmail("alice@example.test", ["b@nomx.test"], "Subject: nomx\r\n\r\nx\r\n")
c.sendmail("alice@example.test", ["c@backup.test"], "Subject: backup\r\n\r\nx\r\n")
# several messages at once for the same domain: each session that finds the
# first exchanger dead must hand over, not fail the hop for the others
# (mutation: qmgr_link.c sending every new session to mx.next and failing
# the hop after naddrs failed sessions: the backup never got them)
for k in range(3):
    c.sendmail("alice@example.test", ["c%d@backup.test" % k], "Subject: backup%d\r\n\r\nx\r\n" % k)
c.sendmail("alice@example.test", ["o@onion.test"], "Subject: onion\r\n\r\nx\r\n")
c.sendmail("alice@example.test", ["d@nullmx.test"], "Subject: nullmx\r\n\r\nx\r\n")
c.sendmail("alice@example.test", ["e@nosuch.test"], "Subject: nosuch\r\n\r\nx\r\n")
c.sendmail("alice@example.test", ["f@timeout.test"], "Subject: timeout\r\n\r\nx\r\n")
c.sendmail("alice@example.test", ["g@v6.test"], "Subject: v6\r\n\r\nx\r\n")
c.quit()


def dumped(d, subject):
    return any(("Subject: " + subject) in open(f, errors="replace").read() for f in files(d))


check(wait_for(lambda: dumped(W + "/mx", "mx")), "MX record: delivered to its mail exchanger")
check(wait_for(lambda: dumped(W + "/plain", "nomx")), "no MX: delivered to the domain's A")
check(wait_for(lambda: dumped(W + "/v6", "v6")), "an exchanger with only AAAA: over IPv6")
check(wait_for(lambda: dumped(W + "/plain", "backup")),
      "first MX down: the next MX in preference order takes the mail")
check(wait_for(lambda: all(dumped(W + "/plain", "backup%d" % k) for k in range(3)), 10),
      "three messages for that domain at once: all go to the next MX")
def tracked(event, rcpt):
    """Tracking log lines of one event for one recipient."""
    try:
        lines = open(s1 + "/tracking.log").read().splitlines()
    except FileNotFoundError:
        return []
    return [l for l in lines if l.split()[1] == event and "to=<%s>" % rcpt in l]


# a deferral is logged before the delivery that follows it: once its
# DELIVERED line is in, a DEFERRED one would be too
check(wait_for(lambda: tracked("DELIVERED", "c@backup.test")) and
      not tracked("DEFERRED", "c@backup.test"), "in the same attempt (no deferral)")


def ndr(status, rcpt):
    for f in maildir(s1, "alice@example.test"):
        t = open(f).read()
        if "Status: " + status in t and rcpt in t:
            return True
    return False


check(wait_for(lambda: ndr("5.1.10", "d@nullmx.test")), "null MX: DSN with 5.1.10")
check(wait_for(lambda: ndr("5.4.4", "e@nosuch.test")), "no such domain: DSN with 5.4.4")
check(wait_for(lambda: ndr("5.4.4", "o@onion.test")),
      "an exchanger c-ares refuses at once (.onion): DSN with 5.4.4, and the node lives")


def timeout_queue():
    r = subprocess.run([meshctl, "--spool", s1, "--json", "queue", "timeout.test"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    q = json.loads(r.stdout)
    for m in q["messages"]:
        for rc in m["recipients"]:
            if rc["last_error"] and rc["last_error"].startswith("4.4.3"):
                return rc["last_error"]
    return None


check(wait_for(timeout_queue, 30) is not None, "DNS timeout: deferred with 4.4.3, not bounced")
check(wait_for(lambda: tracked("DEFERRED", "f@timeout.test")) and
      not tracked("NDR", "f@timeout.test") and not ndr("", "f@timeout.test"),
      "no DSN for the domain whose DNS timed out: DEFERRED in the tracking log, no NDR")
done()
