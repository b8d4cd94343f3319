#!/usr/bin/env python3
"""The first start under the power-cut harness: the spool's directories
(SPOOL, SPOOL/queue and the first segment's entry) are durable before the
first 250. meshnode starts on a spool that does not exist yet (then on one
whose SPOOL exists but not SPOOL/queue), takes one message for a next hop
that is down (so it stays queued), and the power goes right after the 250:
the message must still be in the spool, and a restart must queue it.

usage: meshnode_powercut_firststart.py MESHNODE MESHCTL MKORG SCHEMA

Proven: with mkdir_sync() not fsyncing the parent (as it was before, or
MM_MUTANT=NO_SPOOL_DIRSYNC) every case loses the message.
"""
import os
import smtplib
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcnode import Node, lib_for, powercut, queues  # noqa: E402
from nodelib import check, done, wait_for, workdir  # noqa: E402
import spoolfmt  # noqa: E402

meshnode, meshctl, mkorg = sys.argv[1:4]
W = workdir("firststart")
N1 = ("127.0.41.1", 2525)
ldif = os.path.join(W, "lab.ldif")
subprocess.run([sys.executable, mkorg, ldif, "--bind", "%s:%d" % N1, "--smarthost",
                "127.0.41.3:25250", "--relay", "127.0.0.0/8"], check=True)
lib = lib_for(meshnode)
opts = ["--set", "retry_min_ms=600000", "--set", "connect_timeout_ms=2000"]


def internet(spool):
    for q in queues(meshctl, spool) or []:
        if q["name"] == "Internet":
            return q["messages"]
    return None


for case, made_before in (("no spool yet", []), ("SPOOL there, no SPOOL/queue", ["n1"])):
    root = os.path.join(W, "disk-%d" % len(made_before))
    os.mkdir(root)
    for d in made_before:              # made by the test: the durable baseline
        os.mkdir(os.path.join(root, d))
    spool = os.path.join(root, "n1")
    node = Node(meshnode, ldif, "N1", spool, powercut.Harness(root, lib), W, opts)
    node.start()
    c = smtplib.SMTP(*N1, timeout=10)
    c.sendmail("load@example.org", ["far@example.net"], "Subject: first\r\nX-Seq: 1\r\n\r\nx\r\n")
    stats = node.cut()                 # right after the 250
    msgs = spoolfmt.read_spool(spool)
    check(len(msgs) == 1, "%s: the first message is in the spool after the cut "
          "(%d messages; %s)" % (case, len(msgs), dict(stats)))
    node.start()
    check(wait_for(lambda: internet(spool) == 1, 10),
          "%s: after a restart it is queued again" % case)
    node.stop()
done()
