#!/usr/bin/env python3
"""meshnode against hostile clients, with real sockets: slowloris on a
command line and in DATA, a client that never reads its replies, a full
disk, and peer text that tries to forge tracking-log fields. Each check
names the mutation of the code it was seen to catch.

usage: meshnode_hostile.py MESHNODE MESHCTL MKORG SCHEMA
"""
import os
import re
import smtplib
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodelib import Raw, check, done, files, maildir, node, sink, wait_for, workdir  # noqa

meshnode, mkorg = sys.argv[1], sys.argv[3]
W = workdir("hostile")
N1 = ("127.0.21.1", 2525)
SINK = "127.0.21.3:25250"
ldif = os.path.join(W, "lab.ldif")
subprocess.run([sys.executable, mkorg, ldif, "--bind", "%s:%d" % N1, "--smarthost", SINK,
                "--relay-first", "127.0.0.0/8"], check=True)
sink(SINK, W + "/sink")
s1 = W + "/n1"
p1 = node(meshnode, ldif, "N1", s1, "--set", "command_deadline_s=2", "--set",
          "data_deadline_s=2", "--set", "data_min_rate=2000", "--set", "max_sessions_per_ip=5",
          "--set", "idle_timeout_s=60")


def rss_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def closed_with(sock, deadline):
    """Everything the server sends until it closes (or the deadline)."""
    sock.settimeout(0.2)
    got = b""
    end = time.time() + deadline
    while time.time() < end:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            break
        if not chunk:
            return got.decode("latin-1"), True
        got += chunk
    return got.decode("latin-1"), False


# --- slowloris: a byte a second never ends a command line -----------------
# (mutation: the command deadline not armed, arm_deadline returning at once:
# the idle timer restarts on every byte and the session lives on)
slow = []
for k in range(5):
    s = socket.create_connection(N1)
    s.recv(1024)
    s.sendall(b"EHLO sl")
    slow.append(s)
busy = Raw(*N1)
check(busy.greeting and busy.greeting.startswith("421 4.7.0"),
      "slowloris: the sessions per address are taken (%s)" % busy.greeting)
t0 = time.time()
for i in range(12):  # a byte every 0.3 s: the idle timer never fires
    for s in slow:
        try:
            s.sendall(b"o")
        except OSError:
            pass
    time.sleep(0.3)
out, gone = closed_with(slow[0], 5)
check(gone and "421 4.4.2" in out,
      "slowloris: a command line that takes longer than command_deadline_s gets 421 4.4.2 "
      "and the session closes (%r after %.1fs)" % (out[-60:], time.time() - t0))
for s in slow:
    s.close()
fresh = wait_for(lambda: (lambda r: r if r.greeting.startswith("220") else None)(Raw(*N1)), 10)
check(fresh is not None, "slowloris: once the slow sessions are cut, a new client is served")
if fresh:
    fresh.close()

# --- slowloris in DATA: a minimum rate ------------------------------------
# (mutation: data_bytes not counted, or the DATA deadline taken from the
# idle timer)
r = Raw(*N1)
r.cmd("EHLO slow.test")
r.cmd("MAIL FROM:<s@example.org>")
r.cmd("RCPT TO:<alice@example.test>")
check(r.cmd("DATA").startswith("354"), "DATA accepted")
t0 = time.time()
for i in range(20):
    try:
        r.send("x")
    except OSError:
        break
    time.sleep(0.25)
out, gone = closed_with(r.s, 5)
check(gone and "421 4.4.2" in out,
      "DATA below data_min_rate past data_deadline_s: 421 4.4.2 (%r after %.1fs)" %
      (out[-60:], time.time() - t0))
check(not maildir(s1, "alice@example.test"), "the slow transfer is not delivered")
# a fast transfer of a big message is not cut
c = smtplib.SMTP(*N1)
big = "Subject: big\r\n\r\n" + ("y" * 998 + "\r\n") * 2000
c.sendmail("s@example.org", ["alice@example.test"], big)
c.quit()
check(wait_for(lambda: maildir(s1, "alice@example.test")), "a 2 MB message at full speed passes")

# --- a client that never reads its replies ---------------------------------
# (mutation: read_cb not stopping at max_reply_backlog: RSS grows by tens
# of MB)
before = rss_kb(p1.pid)
s = socket.create_connection(N1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.recv(1024)
s.setblocking(False)
payload = b"EHLO flood.test\r\n" * (4 * 1024 * 1024 // 17)
sent = 0
end = time.time() + 10
while sent < len(payload) and time.time() < end:
    try:
        sent += s.send(payload[sent:sent + 65536])
    except BlockingIOError:
        time.sleep(0.01)
time.sleep(1)
after = rss_kb(p1.pid)
print("flood: %d bytes of pipelined EHLO sent, RSS %d kB -> %d kB" % (sent, before, after))
check(after - before < 16 * 1024,
      "a client that never reads: the node's memory stays bounded (%+d kB)" % (after - before))
s.close()
ok = Raw(*N1)
check(ok.greeting.startswith("220") and ok.cmd("NOOP").startswith("250"),
      "the node serves others meanwhile")
ok.close()

# --- one recipient, however spelled and however often ---------------------
# (mutation: rcpt_cb not rewriting a directory recipient to the directory's
# form: ALICE@ gets a Maildir of its own and the copies are not merged)
before = len(maildir(s1, "alice@example.test"))
c = smtplib.SMTP(*N1)
c.sendmail("s@example.org", ["ALICE@EXAMPLE.TEST", "alice@example.test", "Alice@Example.Test"] +
           ["alice@example.test"] * 4, "Subject: once\r\n\r\nonce\r\n")
c.quit()
check(wait_for(lambda: len(maildir(s1, "alice@example.test")) == before + 1),
      "seven spellings of alice in one transaction: one copy in alice@example.test")
time.sleep(0.5)
check(len(maildir(s1, "alice@example.test")) == before + 1 and
      not os.path.exists(os.path.join(s1, "mailstore", "ALICE@EXAMPLE.TEST")),
      "no second copy, no second mailbox")

# --- peer text in the tracking log -----------------------------------------
# (mutation: qm_track writing values without mm_logfmt_value)
c = smtplib.SMTP(*N1)
c.sendmail('"x key=forged y"@example.org', ["someone@example.net"], "Subject: q\r\n\r\nq\r\n")
c.quit()
tl = W + "/n1/tracking.log"
line = wait_for(lambda: next((l for l in open(tl).read().splitlines()
                             if "RECEIVED" in l and "forged" in l), None))
check(line is not None and 'from="<\\"x key=forged y\\"@example.org>"' in line and
      " key=forged" not in line.replace('\\"x key=forged', ""),
      "tracking log: a quoted sender with key=value stays one quoted field (%s)" % line)

# --- a full disk: 452 4.3.1, nothing partial, the node goes on -------------
# (mutation: submit_cb answering 451 4.3.0, or the append not cut back)
small = W + "/small/n3"  # the spool is the tmpfs; its log is beside it
os.makedirs(small)
mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", small]).returncode == 0
check(mounted, "a 4 MB tmpfs for the full-disk test (mount needs root)")
if mounted:
    try:
        N3 = ("127.0.21.5", 2525)
        ldif3 = os.path.join(W, "small.ldif")
        subprocess.run([sys.executable, mkorg, ldif3, "--bind", "%s:%d" % N3, "--smarthost",
                        "127.0.21.6:25250", "--relay-first", "127.0.0.0/8"], check=True)
        s3 = small
        sink("127.0.21.6:25250", W + "/sink3")
        p3 = node(meshnode, ldif3, "N1", s3)
        body = "Subject: fill\r\n\r\n" + ("z" * 998 + "\r\n") * 300  # 300 kB
        acked, refused = 0, None
        c = smtplib.SMTP(*N3)
        for k in range(30):
            try:
                c.sendmail("s@example.org", ["far@example.net"], body)
                acked += 1
            except smtplib.SMTPDataError as e:
                refused = (e.smtp_code, e.smtp_error.decode())
                break
        check(refused is not None and refused[0] == 452 and refused[1].startswith("4.3.1"),
              "full disk: 452 4.3.1 after %d messages (%s)" % (acked, refused))
        check(c.noop()[0] == 250, "full disk: the session goes on")
        c.quit()
        check(p3.poll() is None, "full disk: the node keeps running")
        # the queued mail drains to the sink; the refused message was never kept
        check(wait_for(lambda: len(files(W + "/sink3")) >= acked, 30),
              "full disk: every acknowledged message is delivered (%d)" % acked)
        time.sleep(1)
        check(len(files(W + "/sink3")) == acked,
              "full disk: the refused message was not kept (%d delivered, %d acknowledged)" %
              (len(files(W + "/sink3")), acked))
        p3.terminate()
        p3.wait(20)
        check(p3.returncode == 0, "full disk: a clean stop")
    finally:
        subprocess.run(["umount", "-l", small])
done()
