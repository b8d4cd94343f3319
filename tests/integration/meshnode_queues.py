#!/usr/bin/env python3
"""The queue view and retry: a next hop that is down puts its link queue in
Retry with the reason; meshctl --spool shows it (text and JSON), freezes,
thaws and retries it; mail flows once the next hop is back. A message that
cannot go before expire_s comes back as a 5.4.7 DSN.

usage: meshnode_queues.py MESHNODE MESHCTL MKORG SCHEMA
"""
import json
import os
import re
import smtplib
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nodelib  # noqa
from nodelib import check, done, files, maildir, node, sink, wait_for, workdir  # noqa

meshnode, meshctl, mkorg = sys.argv[1:4]
W = workdir("queues")
N1 = ("127.0.13.1", 2525)
ldif = os.path.join(W, "lab.ldif")
subprocess.run([sys.executable, mkorg, ldif, "--bind", "%s:%d" % N1,
                "--smarthost", "127.0.13.3:25250", "--relay", "127.0.0.0/8"], check=True)
s1 = W + "/n1"
n1 = node(meshnode, ldif, "N1", s1, "--set", "retry_min_ms=600000",
          "--set", "connect_timeout_ms=2000")


def ctl(*args, want_json=True):
    r = subprocess.run([meshctl, "--spool", s1] + (["--json"] if want_json else []) +
                       list(args), capture_output=True, text=True)
    if want_json and r.returncode == 0:
        return r.returncode, json.loads(r.stdout)
    return r.returncode, r.stdout + r.stderr


def queue(name):
    return nodelib.queue(meshctl, s1, name)


c = smtplib.SMTP(*N1)
for i in range(3):
    c.sendmail("sender@example.org", ["out%d@example.net" % i], "Subject: %d\r\n\r\nx\r\n" % i)
c.quit()
q = wait_for(lambda: (lambda x: x if x and x["state"] == "Retry" and x["messages"] == 3 else None)
             (queue("Internet")))
check(q is not None, "next hop down: link queue 'Internet' in Retry with 3 messages")
q = q or {}
check("4.4.1" in (q.get("last_error") or ""), "the queue says why: %s" % q.get("last_error"))
check(q.get("next_hop") == "127.0.13.3:25250" and q.get("next_retry_s", 0) > 0,
      "next hop and time to the next retry shown")
rc, names = ctl("queues")
names = [x["name"] for x in names["queues"]] if rc == 0 else []
for want in ("Pre-submission", "Messages awaiting directory lookup",
             "Messages waiting to be routed", "Local delivery",
             "Final destination currently unreachable", "Messages pending reroute"):
    check(want in names, "queue listed: " + want)
rc, text = ctl("queues", want_json=False)
check(rc == 0 and "Internet" in text and "Retry" in text, "text view of the queues")
rc, detail = ctl("queue", "Internet")
msgs = detail.get("messages", []) if rc == 0 else []
check(len(msgs) == 3 and any(m["recipients"][0]["last_error"] for m in msgs),
      "queue Internet: 3 messages; the recipients tried have their last error")
# spool compaction: after a restart the queued messages sit in an old
# segment; past compact_after_s they move to the current one and the old
# segment goes, and a crash after that loses nothing
def segments():
    return sorted(os.listdir(s1 + "/queue"))


n1.terminate()
n1.wait()
n1 = node(meshnode, ldif, "N1", s1, "--set", "retry_min_ms=600000",
          "--set", "connect_timeout_ms=2000", "--set", "compact_after_s=1")
check(wait_for(lambda: "00000001.seg" not in segments(), 20),
      "compaction: the old segment is gone (%s)" % segments())
n1.kill()
n1.wait()
n1 = node(meshnode, ldif, "N1", s1, "--set", "retry_min_ms=600000",
          "--set", "connect_timeout_ms=2000", "--set", "compact_after_s=1")
check(wait_for(lambda: (queue("Internet") or {}).get("messages") == 3),
      "after compaction and kill -9: the 3 messages are still queued")
rc, _ = ctl("freeze", "Internet")
check(rc == 0 and queue("Internet")["state"] == "Frozen", "freeze: Frozen")
rc, _ = ctl("thaw", "Internet")
check(rc == 0 and queue("Internet")["state"] != "Frozen", "thaw")
rc, out = ctl("queue", "No Such Queue")
check(rc == 65, "unknown queue: exit 65")

sink("127.0.13.3:25250", W + "/sink")
rc, _ = ctl("retry", "Internet")
check(rc == 0, "retry now")
check(wait_for(lambda: len(files(W + "/sink")) == 3), "after retry the 3 messages reach the sink")
check(wait_for(lambda: queue("Internet")["messages"] == 0), "and the queue is empty")

# expiry: nothing listens on the smart host of this second organization
ldif2 = os.path.join(W, "lab2.ldif")
N5 = ("127.0.13.5", 2525)
subprocess.run([sys.executable, mkorg, ldif2, "--bind", "%s:%d" % N5,
                "--smarthost", "127.0.13.6:25250", "--relay", "127.0.0.0/8"], check=True)
s5 = W + "/n5"
node(meshnode, ldif2, "N1", s5, "--set", "retry_min_ms=300", "--set", "retry_jitter_pct=0",
     "--set", "glitch_retry_interval_ms=300",
     "--set", "expire_s=2")
c = smtplib.SMTP(*N5)
c.sendmail("alice@example.test", ["far@example.net"], "Subject: expire me\r\n\r\nx\r\n")
c.quit()


def dsn():
    for f in maildir(s5, "alice@example.test"):
        t = open(f).read()
        if "Status: 5.4.7" in t:
            return t
    return None


t = wait_for(dsn, 30)
check(t is not None, "expired after expire_s: DSN with Status 5.4.7 to the sender")
check(t is not None and "4.4.1" in t, "the DSN carries the last error (4.4.1 connect)")
log = lambda: open(os.path.join(W, "N1.log")).read()  # noqa: E731
check(wait_for(lambda: re.search(r"next hop \"Internet\" \(q\d+, 127\.0\.13\.6:25250\) is down "
                                 r"after 4 failures", log())),
      "glitch retry: the hop is reported down after glitch_retry_count (3) retries fail")
done()
