#!/usr/bin/env python3
"""Nothing lost: kill -9 meshnode at random moments while clients send,
restart it on the same spool, and count. Every message that got a 250 must
end up delivered (duplicates are allowed, and counted).

usage: meshnode_crash.py MESHNODE MESHCTL MKORG SCHEMA [ROUNDS] [SEED]
"""
import os
import random
import re
import smtplib
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodelib import check, done, maildir, node, procs, wait_for, workdir  # noqa

meshnode, mkorg = sys.argv[1], sys.argv[3]
rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 6
seed = int(sys.argv[6]) if len(sys.argv) > 6 else int(time.time())
rng = random.Random(seed)
print("seed %d" % seed)
W = workdir("crash")
N1 = ("127.0.11.1", 2525)
ldif = os.path.join(W, "lab.ldif")
subprocess.run([sys.executable, mkorg, ldif, "--bind", "%s:%d" % N1], check=True)
spool = W + "/n1"

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
                c.sendmail("load@example.org", ["alice@example.test"], body)
                with lock:
                    acked.add(n)  # a 250 came back
        except (OSError, smtplib.SMTPException):
            time.sleep(0.05)  # the node is down: try again


node_proc = node(meshnode, ldif, "N1", spool)
threads = [threading.Thread(target=sender, args=(k,)) for k in range(8)]
for t in threads:
    t.start()
for r in range(rounds):
    time.sleep(rng.uniform(0.2, 1.0))
    node_proc.kill()  # SIGKILL: no chance to flush anything
    node_proc.wait()
    node_proc = node(meshnode, ldif, "N1", spool)
time.sleep(0.5)
stop.set()
for t in threads:
    t.join()


def delivered():
    seen = {}
    for f in maildir(spool, "alice@example.test"):
        m = re.search(r"^X-Seq: (\d+)", open(f).read(), re.M)
        if m:
            n = int(m.group(1))
            seen[n] = seen.get(n, 0) + 1
    return seen


wait_for(lambda: acked <= set(delivered()), 120, 0.2)
seen = delivered()
missing = sorted(acked - set(seen))
dups = sum(c - 1 for c in seen.values())
print("acknowledged %d, delivered %d distinct, %d duplicates, %d lost" %
      (len(acked), len(seen), dups, len(missing)))
check(len(acked) > 100, "the clients got mail through between the kills")
check(not missing, "every acknowledged message delivered after %d kills (lost: %s)" %
      (rounds, missing[:10]))
done()
