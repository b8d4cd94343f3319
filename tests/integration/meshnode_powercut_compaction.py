#!/usr/bin/env python3
"""Spool compaction cut at any point, under the power-cut harness.

Messages go to alice (local, delivered at once: done) and to far@example.net
through a smart host that is down, so they stay queued. With
compact_after_s=0 every start is followed, at the first tick, by the move of
the queued messages of the oldest segment into the new one (written again
with alice's done flag, made durable, then the old segment let go). Each
round the power goes at a random point of that: after a random share of
the copies is written (watching the new segment grow), or after the node
logged the move. After each cut the spool (tests/support/spoolfmt.py) must
hold every acknowledged message once, far pending and alice done. At the
end the smart host comes up: every acknowledged message reaches it, and
nothing reaches alice or the sink twice (nothing here may repeat: alice's
deliveries were durable before the first cut).

usage: meshnode_powercut_compaction.py MESHNODE MESHCTL MKORG SCHEMA [ROUNDS] [SEED]

Proven: with the done flag left out of a relocated copy (mm_spool_put
writing 0 for bit 8 of every recipient) alice gets her mail again after the
cuts and the spool check fails; with dead segments collected only after the
new segment's directory fsync at start, every cut brings back the ones
collected since, and they pile up (one more per round).
"""
import os
import random
import smtplib
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcnode import Node, idle, lib_for, powercut, queues, seqs  # noqa: E402
from nodelib import check, done, files, maildir, sink, wait_for, workdir  # noqa: E402
import spoolfmt  # noqa: E402

meshnode, meshctl, mkorg = sys.argv[1:4]
rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 8
seed = int(sys.argv[6]) if len(sys.argv) > 6 else int(time.time())
rng = random.Random(seed)
print("seed %d" % seed)
W = workdir("pccompact")
N1 = ("127.0.44.1", 2525)
SMARTHOST = "127.0.44.3:25250"
ldif = os.path.join(W, "lab.ldif")
subprocess.run([sys.executable, mkorg, ldif, "--bind", "%s:%d" % N1, "--smarthost", SMARTHOST,
                "--relay", "127.0.0.0/8"], check=True)
root = os.path.join(W, "disk")
spool = os.path.join(root, "n1")
node = Node(meshnode, ldif, "N1", spool, powercut.Harness(root, lib_for(meshnode)), W,
            ["--set", "compact_after_s=0", "--set", "retry_min_ms=600000",
             "--set", "connect_timeout_ms=2000"])
ALICE, FAR = "alice@example.test", "far@example.net"
MESSAGES, SIZE = 400, 60000

# --- a queue that stays: 400 messages of 60 kB, alice delivered, far waiting ------
node.start()
acked = set()
lock = threading.Lock()


def send(k):
    c = smtplib.SMTP(*N1, timeout=30)
    for n in range(k, MESSAGES, 8):
        body = "Subject: %d\r\nX-Seq: %d\r\n\r\n%s" % (n, n, ("y" * 98 + "\r\n") * (SIZE // 100))
        c.sendmail("load@example.org", [ALICE, FAR], body)
        with lock:
            acked.add(n)
    c.quit()


ts = [threading.Thread(target=send, args=(k,)) for k in range(8)]
for t in ts:
    t.start()
for t in ts:
    t.join()


def local_empty():
    return any(q["name"] == "Local delivery" and q["messages"] == 0
               for q in queues(meshctl, spool) or [])


check(wait_for(lambda: set(seqs(maildir(spool, ALICE))) >= acked and local_empty(), 60),
      "alice has all %d messages, far's copies wait in the queue" % len(acked))
# a 250 after the last DONE record: its fdatasync covers them all
c = smtplib.SMTP(*N1, timeout=10)
c.sendmail("load@example.org", [FAR], "Subject: fence\r\nX-Seq: 99999\r\n\r\nx\r\n")
c.quit()
acked.add(99999)


def cur_seg():
    segs = spoolfmt.segments(spool)
    return segs[-1] if segs else None


def check_spool(r):
    msgs = {}
    for m in spoolfmt.read_spool(spool, verify=False).values():
        n = int(m.body.split(b"X-Seq: ")[1].split(b"\r")[0])
        msgs[n] = dict(zip(m.rcpts, m.done))
    missing = sorted(acked - set(msgs))
    wrong = sorted(n for n, d in msgs.items() if d.get(FAR) or (ALICE in d and not d[ALICE]))
    check(not missing and not wrong, "round %d: every acknowledged message is in the spool once, "
          "far pending, alice done (missing %s, wrong flags %s)" % (r, missing[:5], wrong[:5]))


# --- rounds: start, compaction at the first tick, the power goes somewhere in it ----
node.kill()
node.cut()
moved_logged = 0
for r in range(rounds):
    total = sum(m.size for m in spoolfmt.read_spool(spool, verify=False).values())
    logged = node.log().count("queued message(s) moved out of segment")
    node.start()
    new = cur_seg()
    # where the power goes: a random share of the copies written, near the
    # end of the copies (before or after the fdatasync), after the move
    share = (rng.uniform(0.0, 1.0), rng.uniform(0.9, 1.0), 2.0)[r % 3]
    if share <= 1.0:   # after that share of the copies is written
        wait_for(lambda: os.path.getsize(new) >= share * total or
                 node.log().count("moved out of segment") > logged, 15, 0.001)
        where = "%.0f%% of the copies written" % (100 * min(share, os.path.getsize(new) / total))
    else:              # after the move was made durable and logged
        wait_for(lambda: node.log().count("moved out of segment") > logged, 15, 0.005)
        where = "after the move"
    stats = node.cut()
    if node.log().count("moved out of segment") > logged:
        moved_logged += 1
    print("round %d: cut %s (%d changes undone)" % (r, where, stats["undone"]))
    check_spool(r)
segs = spoolfmt.segments(spool)
check(len(segs) <= 3, "dead segments do not pile up over the cuts (%d: %s)" %
      (len(segs), [os.path.basename(x) for x in segs]))
check(moved_logged > 0, "compaction finished in %d of %d rounds before the cut" %
      (moved_logged, rounds))

# --- the smart host comes up ------------------------------------------------------
node.start()
sink(SMARTHOST, W + "/sink")
subprocess.run([meshctl, "--spool", spool, "retry", "Internet"], capture_output=True)
out = lambda: seqs(files(W + "/sink"))  # noqa: E731
wait_for(lambda: set(out()) >= acked or idle(meshctl, spool), 120, 0.2)
got, box = out(), seqs(maildir(spool, ALICE))
lost = sorted(acked - set(got))
dups = sum(c - 1 for c in got.values()) + sum(c - 1 for c in box.values())
print("rounds %d acknowledged %d delivered %d duplicates %d lost %d" %
      (rounds, len(acked), len(set(got)), dups, len(lost)))
check(not lost, "every acknowledged message reaches the smart host (lost %s)" % lost[:5])
check(dups == 0, "nothing is delivered twice, to the sink or to alice (%d)" % dups)
done()
