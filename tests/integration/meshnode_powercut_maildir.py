#!/usr/bin/env python3
"""Maildir delivery under the power-cut harness: after a cut, every
recipient the spool has marked done (it is not delivered again after a
restart) has the message in mailstore/<addr>/new/.

1. Rounds of load, each to recipients that have no mailbox yet (so the
   first delivery's directories are made while the power goes), each
   message to 1-4 of them; the node is cut at a random moment; then the
   spool (read with tests/support/spoolfmt.py) is checked against the
   Maildirs before the node starts again. At the end everything
   acknowledged is delivered.
2. A mailbox half made by an earlier run that was killed (SIGKILL, no
   power cut) between its mkdirs and their fsyncs: the next run delivers
   into it and marks the recipient done; then the power goes. The
   directories must have been made durable by then.

usage: meshnode_powercut_maildir.py MESHNODE MESHCTL MKORG SCHEMA [ROUNDS] [SEED]

Proven: without the fsync of new/ after the rename (mm_maildir_deliver's
sync_dir(newdir)) part 1 finds done recipients without their message;
without the fsyncs of directories that exist already (maildir.c before
the mailboxes it made durable were remembered per process) part 2 loses
the delivery.
"""
import os
import random
import smtplib
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcnode import Node, add_users, idle, lib_for, powercut, seqs  # noqa: E402
from nodelib import check, done, maildir, wait_for, workdir  # noqa: E402
import spoolfmt  # noqa: E402

meshnode, meshctl, mkorg = sys.argv[1:4]
rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 6
seed = int(sys.argv[6]) if len(sys.argv) > 6 else int(time.time())
rng = random.Random(seed)
print("seed %d" % seed)
W = workdir("pcmaildir")
N1 = ("127.0.43.1", 2525)
ldif = os.path.join(W, "lab.ldif")
subprocess.run([sys.executable, mkorg, ldif, "--bind", "%s:%d" % N1], check=True)
PER_ROUND = 6
users = ["u%02d" % i for i in range(rounds * PER_ROUND)] + ["half"]
add_users(ldif, users)
root = os.path.join(W, "disk")
spool = os.path.join(root, "n1")
h = powercut.Harness(root, lib_for(meshnode))
node = Node(meshnode, ldif, "N1", spool, h, W)


def addr(u):
    return u + "@example.test"


def holes():
    """(X-Seq, recipient) pairs the spool says are done but the Maildir lacks"""
    missing = []
    for m in spoolfmt.read_spool(spool).values():
        n = int(m.body.split(b"X-Seq: ")[1].split(b"\r")[0]) if b"X-Seq: " in m.body else None
        for a, d in zip(m.rcpts, m.done):
            if d and n is not None and n not in seqs(maildir(spool, a)):
                missing.append((n, a))
    return missing


acked = {}                                  # X-Seq -> recipients
lock = threading.Lock()
counter = [0]


def load(names, stop):
    def run():
        while not stop.is_set():
            try:
                c = smtplib.SMTP(*N1, timeout=10)
                while not stop.is_set():
                    with lock:
                        counter[0] += 1
                        n = counter[0]
                    to = [addr(u) for u in rng.sample(names, rng.randint(1, 4))]
                    c.sendmail("load@example.org", to, "Subject: %d\r\nX-Seq: %d\r\n\r\nbody\r\n"
                               % (n, n))
                    with lock:
                        acked[n] = to
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)
    ts = [threading.Thread(target=run) for _ in range(4)]
    for t in ts:
        t.start()
    return ts


# --- 1. random cuts while first deliveries make their mailboxes --------------------
node.start()
bad = []
for r in range(rounds):
    names = users[r * PER_ROUND:(r + 1) * PER_ROUND]
    stop = threading.Event()
    ts = load(names, stop)
    try:
        time.sleep(rng.uniform(0.05, 0.6))
        node.cut()
    finally:
        stop.set()  # also when the cut fails: the clients stop, the test ends
        for t in ts:
            t.join()
    found = holes()
    bad += found
    check(not found, "round %d: every recipient the spool marks done has the message in new/ "
          "(%d without: %s)" % (r, len(found), found[:5]))
    node.start()


def all_delivered():
    return all(n in seqs(maildir(spool, a)) for n, to in acked.items() for a in to)


wait_for(lambda: all_delivered() or idle(meshctl, spool), 60, 0.2)
lost = [(n, a) for n, to in acked.items() for a in to if n not in seqs(maildir(spool, a))]
print("rounds %d acknowledged %d recipients %d lost %d" %
      (rounds, len(acked), sum(len(t) for t in acked.values()), len(lost)))
check(len(acked) > 20, "mail got through between the cuts")
check(not lost, "after the last start every acknowledged recipient is delivered (%s)" % lost[:5])

# --- 2. a mailbox half made by a run killed between mkdir and fsync -----------------
node.kill()                                 # no power cut: the page cache keeps it all
box = os.path.join(spool, "mailstore", addr("half"))
subprocess.run([sys.executable, "-c", """
import os, signal, sys
box = sys.argv[1]
for d in (box, box + "/tmp", box + "/new", box + "/cur"):
    os.mkdir(d)                             # no fsync of any parent
os.kill(os.getpid(), signal.SIGKILL)
""", box], env=h.env())
node.start()
c = smtplib.SMTP(*N1, timeout=10)
c.sendmail("load@example.org", [addr("half")], "Subject: half\r\nX-Seq: 900001\r\n\r\nx\r\n")
check(wait_for(lambda: 900001 in seqs(maildir(spool, addr("half"))), 10),
      "delivered into the half-made mailbox")
# a 250 for a later message: its fdatasync covers the DONE record written before it
c.sendmail("load@example.org", [addr("u00")], "Subject: after\r\nX-Seq: 900002\r\n\r\nx\r\n")
node.cut()
done_half = [m for m in spoolfmt.read_spool(spool).values()
             if addr("half") in m.rcpts and all(m.done)]
check(not holes(), "after the cut every done recipient has its message (%s)" % holes()[:3])
check(900001 in seqs(maildir(spool, addr("half"))) or not done_half,
      "the half-made mailbox survives with its delivery (it was made durable before the DONE)")
node.start()
check(wait_for(lambda: 900001 in seqs(maildir(spool, addr("half"))), 10),
      "and after a restart the message is there (delivered or not lost)")
done()
