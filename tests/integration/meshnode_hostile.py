#!/usr/bin/env python3
"""meshnode against hostile clients, with real sockets: slowloris on a
command line and in DATA, a client that never reads its replies, a full
disk, and peer text that tries to forge tracking-log fields. Each check
names the mutation of the code it was seen to catch.

usage: meshnode_hostile.py MESHNODE MESHCTL MKORG SCHEMA
"""
import os
import re
import select
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
# a line longer than the limit, sent slowly: dropped as it comes, still one
# line under its deadline (mutation: arm_deadline resetting line_t0 while
# the machine discards an over-long line)
s = socket.create_connection(N1)
s.recv(1024)
t0 = time.time()
cut = None
while time.time() - t0 < 10:
    try:
        s.sendall(b"x" * 150)
    except OSError:
        cut = time.time() - t0
        break
    r, _, _ = select.select([s], [], [], 0.5)
    if r:
        try:
            if b"421" in s.recv(65536):
                cut = time.time() - t0
                break
        except OSError:
            cut = time.time() - t0
            break
check(cut is not None and cut < 6,
      "an endless line at 300 bytes a second is cut at command_deadline_s (%s)" % cut)
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
# (mutations: submit_cb answering 451 4.3.0; spool.c append() not cutting
# the file back after a short write -- the torn record then hides every
# record after it from recovery, and mail acknowledged once space came back
# is lost at the next start)
small = W + "/small/n3"  # the spool is the tmpfs; its log is beside it
os.makedirs(small)
mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", small]).returncode == 0
check(mounted, "a 4 MB tmpfs for the full-disk test (mount needs root)")
if mounted:
    try:
        N3 = ("127.0.21.5", 2525)
        SINK3 = "127.0.21.6:25250"
        ldif3 = os.path.join(W, "small.ldif")
        subprocess.run([sys.executable, mkorg, ldif3, "--bind", "%s:%d" % N3, "--smarthost",
                        SINK3, "--relay-first", "127.0.0.0/8"], check=True)
        s3 = small
        extra = ["--set", "retry_min_ms=200", "--set", "glitch_retry_interval_ms=200",
                 "--set", "connect_timeout_ms=1000"]
        p3 = node(meshnode, ldif3, "N1", s3, *extra)
        filler = os.path.join(small, "filler")
        with open(filler, "wb") as f:  # room for about five messages
            f.write(b"\0" * (4 * 1024 * 1024 - 1700 * 1024))
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
        check(p3.poll() is None, "full disk: the node keeps running")
        os.unlink(filler)  # room again: the next ones are acknowledged
        small_body = "Subject: after\r\n\r\nafter the disk was full\r\n"
        for k in range(3):
            c.sendmail("s@example.org", ["far@example.net"], small_body)
            acked += 1
        c.quit()
        p3.kill()  # a crash: what recovery reads is what counts
        p3.wait()
        sink(SINK3, W + "/sink3")
        p3 = node(meshnode, ldif3, "N1", s3, *extra)
        check(wait_for(lambda: len(files(W + "/sink3")) >= acked, 30),
              "full disk: after a crash every acknowledged message is delivered (%d of %d)" %
              (len(files(W + "/sink3")), acked))
        time.sleep(1)
        got = len(files(W + "/sink3"))
        check(got == acked, "full disk: the refused message was not kept (%d delivered, %d "
              "acknowledged)" % (got, acked))
        p3.terminate()
        p3.wait(20)
        check(p3.returncode == 0, "full disk: a clean stop")
    finally:
        subprocess.run(["umount", "-l", small])

# --- TLS trickled a byte at a time ----------------------------------------
# (mutation: start_tls not arming the handshake deadline, or arm_deadline
# leaving TLS sessions without one between commands: the session lived on)
T = W + "/tls"
os.makedirs(T)
ca = W + "/ca"
os.makedirs(ca)


def sh(*args, cwd=None):
    subprocess.run(args, check=True, cwd=cwd or W, capture_output=True)


sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
   "-keyout", ca + "/ca.key", "-out", T + "/ca.pem", "-days", "30", "-subj", "/CN=Lab CA")
sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
   "-keyout", T + "/N1.key", "-out", ca + "/N1.csr", "-subj", "/CN=N1")
sh("openssl", "x509", "-req", "-in", ca + "/N1.csr", "-CA", T + "/ca.pem", "-CAkey",
   ca + "/ca.key", "-CAcreateserial", "-out", T + "/N1.pem", "-days", "30")
N4 = ("127.0.21.7", 2525)
ldif4 = os.path.join(W, "tls.ldif")
subprocess.run([sys.executable, mkorg, ldif4, "--bind", "%s:%d" % N4], check=True)
node(meshnode, ldif4, "N1", W + "/n4", "--tls", T, "--set", "command_deadline_s=2",
     "--set", "idle_timeout_s=4")
import ssl  # noqa: E402
ctx = ssl.create_default_context(cafile=T + "/ca.pem")
ctx.check_hostname = False
# a ClientHello made by Python's ssl, sent a byte every 0.5 s
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
obj = ctx.wrap_bio(incoming, outgoing)
try:
    obj.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = outgoing.read()
s = socket.create_connection(N4)
s.recv(1024)
s.sendall(b"STARTTLS\r\n")
s.recv(1024)
t0 = time.time()
gone = False
for b in hello[:40]:
    try:
        s.sendall(bytes([b]))
    except OSError:
        gone = True
        break
    time.sleep(0.5)
    s.setblocking(False)
    try:
        if s.recv(1024) == b"":
            gone = True
            break
    except BlockingIOError:
        pass
    except OSError:
        gone = True
        break
    s.setblocking(True)
check(gone and time.time() - t0 < 10,
      "a TLS handshake trickled a byte at a time is cut at command_deadline_s (%.1fs)" %
      (time.time() - t0))
s.close()
# after the handshake: an idle TLS session is cut at idle_timeout_s even
# when raw bytes of a record trickle in
t = Raw(*N4)
t.cmd("EHLO trickle.test")
t.cmd("STARTTLS")
t.s = ctx.wrap_socket(t.s)
t.buf = b""
t.cmd("EHLO trickle.test")
fd = t.s.fileno()  # half a TLS record, a byte at a time, under the TLS layer
t0 = time.time()
cut = None
for b in b"\x17\x03\x03\x00\x40" + b"\x00" * 40:
    try:
        os.write(fd, bytes([b]))
    except OSError:
        cut = time.time() - t0
        break
    r, _, _ = select.select([fd], [], [], 0.5)
    if r:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            cut = time.time() - t0
            break
check(cut is not None and cut < 10,
      "a TLS record trickled between commands: the session is cut at idle_timeout_s (%s)" % cut)
done()
