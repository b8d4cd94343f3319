#!/usr/bin/env python3
"""Nothing lost at a power cut: 8 clients send while meshnode runs under the
power-cut harness (tests/support/powercut.py); at random moments it is
killed with SIGKILL and the harness's undo step turns its files into what a
disk with a volatile write cache would hold at that instant; then it is
started again on the same spool. Every message that got a 250 must be
delivered in the end (duplicates are allowed, and counted).

Each message goes to alice (local Maildir delivery, at once) and to
far@example.net through the smart host, which is down until the end: so a
backlog of acknowledged mail waits in the spool whenever the power goes
(delivered at once, a message whose spool record the disk lost would be in
the Maildir already and the loss would go unseen). At the end smtp-sink
comes up on the smart host's address, the queue is retried, and a message
counts as delivered when both alice's Maildir and the sink have it.

With --lying the disk lies (fsync returns 0 and makes nothing durable): the
same run must then lose mail, which shows the harness can see a loss; with
--expect-loss the test passes only if mail is lost (the lying-disk test, and
scripts/test.sh for the mutants of node/spool.c).

usage: meshnode_crash.py MESHNODE MESHCTL MKORG SCHEMA [KILLS] [SEED]
                         [--kills N] [--seed S] [--lying] [--expect-loss]
The harness library is $POWERCUT_LIB, or found in MESHNODE's build tree.

Proven: with the syncer's fdatasync taken out (MM_MUTANT=NO_SYNCER_FDATASYNC)
or the new segment's directory fsync (NO_SEGMENT_DIRSYNC) this test loses
mail and fails; scripts/test.sh checks that on every run. (Before the
smart-host backlog, with local delivery only, both mutants passed.)
"""
import argparse
import os
import random
import smtplib
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcnode import Node, idle, lib_for, powercut, seqs  # noqa: E402
from nodelib import check, done, files, maildir, sink, wait_for, workdir  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("meshnode")
ap.add_argument("meshctl")
ap.add_argument("mkorg")
ap.add_argument("schema")
ap.add_argument("kills_pos", nargs="?", type=int)
ap.add_argument("seed_pos", nargs="?", type=int)
ap.add_argument("--kills", type=int, default=12)
ap.add_argument("--seed", type=int)
ap.add_argument("--lying", action="store_true")
ap.add_argument("--expect-loss", action="store_true")
a = ap.parse_args()
kills = a.kills_pos or a.kills
seed = a.seed_pos or a.seed or int(time.time())
rng = random.Random(seed)
print("seed %d%s" % (seed, ", lying disk" if a.lying else ""))

W = workdir("crash")
N1 = ("127.0.40.1", 2525)
SMARTHOST = "127.0.40.3:25250"
ldif = os.path.join(W, "lab.ldif")
subprocess.run([sys.executable, a.mkorg, ldif, "--bind", "%s:%d" % N1, "--smarthost", SMARTHOST,
                "--relay", "127.0.0.0/8"], check=True)
root = os.path.join(W, "disk")                  # the modelled disk
spool = os.path.join(root, "n1")
h = powercut.Harness(root, lib_for(a.meshnode), lying=a.lying)
node = Node(a.meshnode, ldif, "N1", spool, h, W,
            ["--set", "retry_min_ms=600000", "--set", "connect_timeout_ms=2000"])

acked = set()
lock = threading.Lock()
stop = threading.Event()
seq = [0]


def sender(k):
    while not stop.is_set():
        try:
            c = smtplib.SMTP(*N1, timeout=10)
            while not stop.is_set():
                with lock:
                    seq[0] += 1
                    n = seq[0]
                body = "Subject: crash %d\r\nX-Seq: %d\r\n\r\n%s" % (n, n, ("x" * 98 + "\r\n") * 20)
                c.sendmail("load@example.org", ["alice@example.test", "far@example.net"], body)
                with lock:
                    acked.add(n)  # a 250 came back
        except (OSError, smtplib.SMTPException):
            time.sleep(0.05)  # the node is down: try again


node.start()
threads = [threading.Thread(target=sender, args=(k,)) for k in range(8)]
for t in threads:
    t.start()
undone = 0
try:
    for r in range(kills):
        time.sleep(rng.uniform(0.2, 1.2))  # a random moment under load
        stats = node.cut()
        undone += stats["undone"]
        node.start()
    time.sleep(0.5)
finally:
    stop.set()  # also when a start fails: the clients stop, the test ends
    for t in threads:
        t.join()
sink(SMARTHOST, W + "/sink")
subprocess.run([a.meshctl, "--spool", spool, "retry", "Internet"], capture_output=True)


def delivered():
    """X-Seq -> copies, for the messages both alice and the sink have"""
    box, out = seqs(maildir(spool, "alice@example.test")), seqs(files(W + "/sink"))
    return {n: box[n] + out[n] - 1 for n in box if n in out}


# everything acknowledged delivered, or (when some is lost) nothing left to do
wait_for(lambda: acked <= set(delivered()) or idle(a.meshctl, spool), 120, 0.2)
seen = delivered()
missing = sorted(acked - set(seen))
dups = sum(c - 1 for c in seen.values())
print("kills %d acknowledged %d delivered %d duplicates %d lost %d (changes undone %d)" %
      (kills, len(acked), len(seen), dups, len(missing), undone))
check(len(acked) > 100, "the clients got mail through between the kills")
if a.expect_loss:
    check(len(missing) > 0, "mail that got a 250 is lost, as it must be here")
else:
    check(not missing, "every acknowledged message delivered after %d power cuts (lost: %s)" %
          (kills, missing[:10]))
done()
