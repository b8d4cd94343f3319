#!/usr/bin/env python3
"""Up means up, with a real node: N1 is the bridgehead of Primary, the only
SMTP connector for smtp:*. Its smart host (an smtp-sink) stops; N1 reports
Primary down and its link queue backs off, the next try more than a minute
away (retry_min_ms 70 s, as after a long outage). The smart host comes
back: the next probe finds it up, and the waiting mail goes within a
probe interval, not at the queue's retry time. Without a master.

(mutations: qmgr_link.c qm_hop_up returning at once -- the mail waited for
the 70 s timer; routing.c drain not telling the queue manager
(mm_qm_target_up) and qm_refresh_link without its down-to-up transition,
both -- the same)

usage: routing_ready.py MESHNODE MESHCTL MKORG SCHEMA
"""
import os
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nodelib  # noqa: E402
import routing_lib as rl  # noqa: E402
from nodelib import check, done, files, last_error, node, sink, wait_for, workdir  # noqa: E402

meshnode, meshctl = sys.argv[1:3]
W = workdir("rt-ready")
N1 = ("127.0.72.1", 2525)
PRIMARY = "127.0.72.3:25250"
ldif = os.path.join(W, "lab.ldif")
rl.org(ldif, "%s:%d" % N1, PRIMARY, master="127.0.72.1:6910")
s1 = W + "/n1"
log = os.path.join(W, "N1.log")

p_sink = sink(PRIMARY, W + "/primary")
node(meshnode, ldif, "N1", s1, "--set", "insecure=1", "--set", "glitch_retry_count=1",
     "--set", "glitch_retry_interval_ms=100", "--set", "down_probe_interval_ms=300",
     "--set", "retry_min_ms=70000", "--set", "connect_timeout_ms=1000")


def send(n, subject):
    c = smtplib.SMTP(*N1)
    for i in range(n):
        c.sendmail("s@example.org", ["far%d@example.net" % i],
                   "Subject: %s %d\r\n\r\nbody\r\n" % (subject, i))
    c.quit()


def arrived(subject):
    return sum(1 for f in files(W + "/primary")
               if ("Subject: " + subject) in open(f, errors="replace").read())


def logtext():
    return open(log, errors="replace").read()


p_sink.kill()
p_sink.wait()
nodelib.procs.remove(p_sink)
send(2, "waiting")
check(wait_for(lambda: 'connector "Primary": bridgehead N1/SMTP reported down' in logtext(), 20),
      "the smart host stops: N1 reports Primary down")
check(wait_for(lambda: "is down after" in logtext(), 20),
      "the link queue counts its hop down; its next try is 70 s away")
err = last_error(meshctl, s1, "Primary")
check(err is not None and err.startswith("4.4.1"), "the mail waits in Primary's queue (%s)" % err)
time.sleep(1)
back = time.time()
sink(PRIMARY, W + "/primary")
check(wait_for(lambda: arrived("waiting") == 2, 15),
      "the smart host is back: the waiting mail goes within a few probe intervals, not after "
      "70 s (%d of 2 after %.1f s)" % (arrived("waiting"), time.time() - back))
check("ready now" in logtext(), "N1 logs that the queue is ready now")
done()
