#!/usr/bin/env python3
"""SIGTERM while messages are in flight, under the power-cut harness. Six
sessions are in DATA; three send the body and the final dot, the node gets
SIGTERM at once (before any reply is read), the other three send theirs
after it. Whatever each client hears (250, 421, or nothing), a message that
got a 250 must survive a power cut: right after the node exits, or (every
other round) right after the replies are read, while the node is still
saying goodbye. The mail goes to a smart host that is down, so it stays in
the spool; the spool (tests/support/spoolfmt.py) is checked after each cut.

usage: meshnode_powercut_sigterm.py MESHNODE MESHCTL MKORG SCHEMA [ROUNDS]

Proven: with mm_spool_sync_now reporting durable without its fdatasync, the
250s the stopping node sends are not durable and the rounds cut before the
exit lose them.
"""
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcnode import Node, lib_for, powercut  # noqa: E402
from nodelib import Raw, check, done, workdir  # noqa: E402
import spoolfmt  # noqa: E402

meshnode, meshctl, mkorg = sys.argv[1:4]
rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 8
W = workdir("pcsigterm")
N1 = ("127.0.45.1", 2525)
ldif = os.path.join(W, "lab.ldif")
subprocess.run([sys.executable, mkorg, ldif, "--bind", "%s:%d" % N1, "--smarthost",
                "127.0.45.3:25250", "--relay", "127.0.0.0/8"], check=True)
root = os.path.join(W, "disk")
spool = os.path.join(root, "n1")
node = Node(meshnode, ldif, "N1", spool, powercut.Harness(root, lib_for(meshnode)), W,
            ["--set", "retry_min_ms=600000", "--set", "connect_timeout_ms=2000"])


def in_spool():
    out = set()
    for m in spoolfmt.read_spool(spool).values():
        if b"X-Seq: " in m.body:
            out.add(int(m.body.split(b"X-Seq: ")[1].split(b"\r")[0]))
    return out


acked, replies, n = set(), {}, 0
for r in range(rounds):
    node.start()
    sessions = []
    for k in range(6):
        c = Raw(*N1)
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<load@example.org>")
        c.cmd("RCPT TO:<far@example.net>")
        ok = c.cmd("DATA").startswith("354")
        n += 1
        sessions.append((n, c, ok))
    body = lambda n: "Subject: %d\r\nX-Seq: %d\r\n\r\n%s.\r\n" % (n, n, "z" * 70 + "\r\n")  # noqa
    for seq, c, ok in sessions[:3]:
        c.send(body(seq))
    node.p.send_signal(signal.SIGTERM)   # before any reply is read
    for seq, c, ok in sessions[3:]:
        try:
            c.send(body(seq))
        except OSError:
            pass
    for seq, c, ok in sessions:
        try:
            rep = c.reply() or "(closed)"
        except OSError:
            rep = "(reset)"
        replies[rep[:3]] = replies.get(rep[:3], 0) + 1
        if ok and rep.startswith("250"):
            acked.add(seq)
        c.close()
    if r % 2:
        node.cut()                       # during the goodbye: SIGKILL, then the cut
        when = "right after the replies"
    else:
        check(node.p.wait(20) == 0, "round %d: the node exits 0 on SIGTERM" % r)
        node.cut()                       # after the exit
        when = "right after the exit"
    missing = sorted(acked - in_spool())
    check(not missing, "round %d, cut %s: every message that got a 250 is in the spool (%d "
          "acknowledged so far, missing %s)" % (r, when, len(acked), missing))
print("rounds %d sessions %d replies %s acknowledged %d" %
      (rounds, n, dict(sorted(replies.items())), len(acked)))
check(len(acked) >= rounds, "the stopping node answered 250 to what it had (%d)" % len(acked))
node.start()
done()
