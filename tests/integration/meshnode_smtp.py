#!/usr/bin/env python3
"""meshnode end to end, with real peers: Python smtplib, swaks and Postfix's
smtp-source as clients, smtp-sink as the next hop, two meshnode processes
relaying to each other. Checks replies and enhanced codes, Maildir
delivery, relaying, relay refusal, DSNs, limits and bad input.

usage: meshnode_smtp.py MESHNODE MESHCTL MKORG SCHEMA
"""
import json
import os
import re
import smtplib
import socketserver
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodelib import Raw, check, done, files, maildir, node, sink, wait_for, workdir  # noqa

meshnode, meshctl, mkorg = sys.argv[1:4]
W = workdir("smtp")
N1, N2 = ("127.0.10.1", 2525), ("127.0.10.2", 2525)
ldif = os.path.join(W, "lab.ldif")
subprocess.run([sys.executable, mkorg, ldif, "--bind", "%s:%d" % N1, "--second", "%s:%d" % N2,
                "--smarthost", "127.0.10.3:25250", "--mil", "127.0.10.4:25250",
                "--relay-first", "127.0.0.1/32", "--max-size", "200000"], check=True)
sink("127.0.10.3:25250", W + "/sink")
sink("127.0.10.4:25250", W + "/milsink", "-f", "RCPT")
s1, s2 = W + "/n1", W + "/n2"
node(meshnode, ldif, "N1", s1, "--set", "retry_min_ms=200", "--set", "glitch_retry_interval_ms=200")
node(meshnode, ldif, "N2", s2)


def settled(spool):
    """Nothing queued on the node: every message it took is delivered."""
    r = subprocess.run([meshctl, "--spool", spool, "--json", "queues"], capture_output=True,
                       text=True)
    return r.returncode == 0 and all(q["messages"] == 0 for q in json.loads(r.stdout)["queues"]
                                     if q["kind"] != "presubmit")


def track(spool):
    try:
        return open(spool + "/tracking.log").read()
    except FileNotFoundError:
        return ""


# --- the mail path -------------------------------------------------------
c = smtplib.SMTP(*N1)
code, ehlo = c.ehlo("client.test")
caps = ehlo.decode().upper().split("\n")
for kw in ("PIPELINING", "SIZE 200000", "8BITMIME", "CHUNKING", "DSN", "ENHANCEDSTATUSCODES"):
    check(kw in caps, "EHLO advertises " + kw)
refused = c.sendmail("sender@example.org", ["alice@example.test"],
                     "Subject: local\r\n\r\nline one\r\n.leading dot\r\n")
check(refused == {}, "smtplib: local recipient accepted")
check(wait_for(lambda: maildir(s1, "alice@example.test")), "local delivery into Maildir")
box = maildir(s1, "alice@example.test")
text = open(box[0]).read() if box else ""
check("\n.leading dot\n" in text and "Received: from client.test" in text and
      "Return-Path: <sender@example.org>" in text, "Maildir file: trace headers, dot unstuffed")

c.sendmail("sender@example.org", ["bob@example.test"], "Subject: to n2\r\n\r\nhello bob\r\n")
check(wait_for(lambda: maildir(s2, "bob@example.test")),
      "recipient homed on N2: relayed N1 -> N2 and delivered there")
try:
    c.sendmail("sender@example.org", ["nobody@example.test"], "Subject: x\r\n\r\nx\r\n")
    check(False, "unknown recipient refused")
except smtplib.SMTPRecipientsRefused as e:
    code, msg = e.recipients["nobody@example.test"]
    check(code == 550 and msg.startswith(b"5.1.1"), "unknown recipient: 550 5.1.1 at RCPT")
c.sendmail("sender@example.org", ["someone@example.net"], "Subject: out\r\n\r\nexternal\r\n",
           mail_options=["RET=HDRS", "ENVID=abc+2B1"],
           rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;someone@example.net"])
check(wait_for(lambda: files(W + "/sink")), "external recipient relayed to the smart host")
dump = open(files(W + "/sink")[0], errors="replace").read() if files(W + "/sink") else ""
check("RET=HDRS" in dump and "ENVID=abc+2B1" in dump and "NOTIFY=SUCCESS,FAILURE" in dump and
      "ORCPT=rfc822;someone@example.net" in dump,
      "DSN parameters passed on to a next hop that offers DSN")
c.quit()

# relay refused: N2 has no allow-list and 127.0.0.1 is no organization server
r = subprocess.run(["swaks", "--server", "%s:%d" % N2, "--from", "a@example.org", "--to",
                    "x@example.net", "--quit-after", "RCPT"], capture_output=True, text=True)
check("550 5.7.1" in r.stdout, "swaks: relay for a stranger refused with 550 5.7.1")
r = subprocess.run(["swaks", "--server", "%s:%d" % N2, "--from", "a@example.org", "--to",
                    "bob@example.test", "--body", "from swaks"], capture_output=True, text=True)
check("250 2.0.0 Ok: queued as" in r.stdout, "swaks: mail for an organization recipient")

# DSN: the *.mil next hop refuses every recipient; the NDR comes back to alice
c = smtplib.SMTP(*N1)
c.sendmail("alice@example.test", ["general@army.mil"], "Subject: to mil\r\n\r\nhello\r\n",
           rcpt_options=["NOTIFY=FAILURE", "ORCPT=rfc822;general@army.mil"])
c.quit()


def ndr():
    for f in maildir(s1, "alice@example.test"):
        t = open(f).read()
        if "multipart/report" in t:
            return t
    return None


report = wait_for(ndr)
check(report is not None, "NDR delivered to the sender")
report = report or ""
check("Return-Path: <>" in report and "report-type=delivery-status" in report,
      "NDR: from <>, multipart/report; report-type=delivery-status")
check("Final-Recipient: rfc822; general@army.mil" in report and "Action: failed" in report and
      "Status: 5." in report and "Original-Recipient: rfc822;general@army.mil" in report,
      "NDR: RFC 3464 fields per recipient (Final-Recipient, Action, Status, ORCPT)")
check("Subject: to mil" in report, "NDR: the original headers are attached")
check(wait_for(lambda: all(w in track(s1) for w in ("NDR ", "DELIVERED ", "RECEIVED "))),
      "tracking log: RECEIVED, DELIVERED and NDR lines")

# --- BDAT ------------------------------------------------------------------
t = Raw(*N1)
t.cmd("EHLO raw.test")
t.cmd("MAIL FROM:<raw@example.org>")
t.cmd("RCPT TO:<alice@example.test>")
body = b"Subject: bdat\r\n\r\nchunked\r\n"
t.send(b"BDAT 10\r\n" + body[:10])
r1 = t.reply()
t.send(b"BDAT %d LAST\r\n" % (len(body) - 10) + body[10:])
r2 = t.reply()
check(r1.startswith("250 2.0.0") and r2.startswith("250 2.0.0 Ok: queued"),
      "BDAT in two chunks: 250 per chunk, queued at LAST")
t.send(b"BDAT 3 LAST\r\nabc")
check(t.reply().startswith("503 5.5.1"), "BDAT without MAIL: chunk read and dropped, 503 5.5.1")
check(t.cmd("NOOP").startswith("250"), "in sync after the refused chunk")
t.close()

# --- bad input -------------------------------------------------------------
t = Raw(*N1)
check(t.cmd("RCPT TO:<alice@example.test>").startswith("503 5.5.1"), "RCPT before MAIL: 503 5.5.1")
check(t.cmd("EHLO raw.test").startswith("250"), "EHLO")
check(t.cmd("RCPT TO:<alice@example.test>").startswith("503 5.5.1"),
      "RCPT before MAIL after EHLO: 503 5.5.1")
check(t.cmd("FOO bar").startswith("500 5.5.2"), "unknown command: 500 5.5.2")
check(t.cmd("MAIL FROM:<" + "a" * 600 + "@x.org>").startswith("500 5.5.2"),
      "command line over 512 octets: 500 5.5.2")
check(t.cmd("MAIL FROM:<bad address>").startswith("501 5.1.7"), "bad sender syntax: 501 5.1.7")
check(t.cmd("MAIL FROM:<a@example.org> SIZE=999999999").startswith("552 5.2.3"),
      "SIZE over the limit: 552 5.2.3")
check(t.cmd("MAIL FROM:<a@example.org> FOO=1").startswith("555 5.5.4"),
      "unknown MAIL parameter: 555 5.5.4")
check(t.cmd("VRFY alice").startswith("252"), "VRFY: 252 (disabled)")
check(t.cmd("AUTH PLAIN AGFsaWNlAHg=").startswith("538 5.7.11"), "AUTH without TLS: 538 5.7.11")
check(t.cmd("X-LINK2STATE DIGEST=00").startswith("530 5.7.0"),
      "X-LINK2STATE unauthenticated: 530 5.7.0")
check(t.cmd("MAIL FROM:<a@example.org>").startswith("250"), "MAIL")
n_ok = 0
# distinct recipients (a repeated one is kept once and never meets the limit)
t.send("".join("RCPT TO:<r%d@example.net>\r\n" % i for i in range(10000)))
replies = [t.reply() for _ in range(10000)]
check(all(r.startswith("250") for r in replies[:1000]) and
      all(r.startswith("452 4.5.3") for r in replies[1000:]),
      "10,000 pipelined RCPTs: 1000 accepted, then 452 4.5.3")
check(t.cmd("RSET").startswith("250"), "RSET")
# SMTP smuggling: only CRLF.CRLF ends DATA; a bare-LF dot line is content
t.cmd("MAIL FROM:<smuggle@example.org>")
t.cmd("RCPT TO:<alice@example.test>")
check(t.cmd("DATA").startswith("354"), "DATA: 354")
t.send("Subject: smuggle\r\n\r\nbefore\n.\nMAIL FROM:<evil@example.org>\r\nafter\r\n.\r\n")
check(t.reply().startswith("250 2.0.0 Ok: queued"),
      "bare LF . LF does not end DATA (no smuggling)")
# had the message ended at the bare-LF dot, the smuggled MAIL's 250 2.1.0
# would come here
r = t.cmd("NOOP")
check(r == "250 2.0.0 Ok", "session in sync after the smuggling attempt (%s)" % r)
# too big
t.cmd("MAIL FROM:<big@example.org>")
t.cmd("RCPT TO:<alice@example.test>")
t.cmd("DATA")
t.send(("x" * 998 + "\r\n") * 250 + ".\r\n")
check(t.reply().startswith("552 5.2.3"), "message over mmMaxMessageSize: 552 5.2.3")
# hop count over the limit (15)
t.cmd("MAIL FROM:<loop@example.org>")
t.cmd("RCPT TO:<alice@example.test>")
t.cmd("DATA")
t.send("".join("Received: from hop%d\r\n" % i for i in range(16)) + "\r\nloop\r\n.\r\n")
check(t.reply().startswith("554 5.4.6"), "16 Received headers: 554 5.4.6")
# text line over 1000 octets
t.cmd("MAIL FROM:<long@example.org>")
t.cmd("RCPT TO:<alice@example.test>")
t.cmd("DATA")
t.send("x" * 1200 + "\r\n.\r\n")
check(t.reply().startswith("500 5.5.6"), "text line over 1000 octets: 500 5.5.6")
# BDAT size lie: fewer bytes than announced swallow the next command as data
t.cmd("MAIL FROM:<lie@example.org>")
t.cmd("RCPT TO:<alice@example.test>")
t.send("BDAT 20 LAST\r\nshort\r\nNOOP\r\n")
t.send("x" * 7)
check(t.reply().startswith("250 2.0.0 Ok: queued"), "BDAT: exactly the announced octets read")
check(t.cmd("QUIT").startswith("221"), "QUIT: 221")
t.close()

# pipelined garbage: the server closes after too many errors, others go on
t = Raw(*N1)
t.send("".join("GARBAGE %d\r\n" % i for i in range(50)))
last = None
while True:
    r = t.reply()
    if r is None:
        break
    last = r
check(last is not None and last.startswith("421 4.7.0"), "pipelined garbage: 421 after 20 errors")
t.close()
check(Raw(*N1).cmd("NOOP").startswith("250"), "the server keeps serving other clients")

# --- duplicate recipients ---------------------------------------------------
before = len(maildir(s1, "alice@example.test"))
c = smtplib.SMTP(*N1)
c.sendmail("dup@example.org", ["alice@example.test", "alice@example.test"],
           "Subject: twice\r\n\r\nx\r\n")
c.quit()


def twice():
    return [f for f in maildir(s1, "alice@example.test")
            if b"Subject: twice" in open(f, "rb").read()]


check(wait_for(lambda: len(twice()) >= 1) and wait_for(lambda: settled(s1)) and
      len(twice()) == 1, "a recipient given twice: delivered once (%d)" % len(twice()))

# --- SMTP smuggling, carried on ---------------------------------------------
# A next hop that keeps the raw bytes of each DATA (one file per
# transaction): whatever mailmesh relays must hold no bare CR or LF, so no
# lenient next hop ever finds an end of data inside it.


class Capture(socketserver.StreamRequestHandler):
    def handle(self):
        w = self.wfile
        w.write(b"220 capture ESMTP\r\n")
        while True:
            line = self.rfile.readline()
            verb = line[:4].upper()
            if not line:
                return
            if verb == b"EHLO":
                w.write(b"250-capture\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                w.write(b"354 go\r\n")
                data = b""
                while data != b".\r\n" and not data.endswith(b"\r\n.\r\n"):
                    chunk = self.rfile.readline()
                    if not chunk:
                        return
                    data += chunk
                fd, path = tempfile.mkstemp(dir=self.server.dump, prefix="tmp.")
                os.write(fd, data)
                os.close(fd)
                os.rename(path, path.replace("tmp.", "msg."))
                w.write(b"250 2.0.0 captured\r\n")
            elif verb == b"QUIT":
                w.write(b"221 2.0.0 bye\r\n")
                return
            else:
                w.write(b"250 2.0.0 ok\r\n")


socketserver.ThreadingTCPServer.allow_reuse_address = True
capture = socketserver.ThreadingTCPServer(("127.0.10.7", 25250), Capture)
capture.daemon_threads = True
capture.dump = W + "/capture"
os.makedirs(capture.dump)
threading.Thread(target=capture.serve_forever, daemon=True).start()
ldif4 = os.path.join(W, "lab4.ldif")
N4 = ("127.0.10.6", 2525)
subprocess.run([sys.executable, mkorg, ldif4, "--bind", "%s:%d" % N4, "--smarthost",
                "127.0.10.7:25250", "--relay", "127.0.0.0/8"], check=True)
s4 = W + "/n4"
node(meshnode, ldif4, "N1", s4)


def captured():
    return [f for f in files(capture.dump) if "/msg." in f]


BARE_CR = re.compile(rb"\r(?!\n)")
BARE_LF = re.compile(rb"(?<!\r)\n")
# every way a lenient parser may see an end of data, but CRLF . CRLF
LENIENT_END = re.compile(rb"(\r\n|\r|\n)\.(\r\n|\r|\n)")
SMUGGLED = (b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
            b"Subject: evil\r\n\r\nsmuggled\r\n")
for k, seq in enumerate([b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r.\r"]):
    name = repr(seq.decode())
    box_before, cap_before = set(maildir(s4, "alice@example.test")), set(captured())
    t = Raw(*N4)
    t.cmd("EHLO smuggler.test")
    t.send(b"MAIL FROM:<smuggle@example.org>\r\nRCPT TO:<alice@example.test>\r\n"
           b"RCPT TO:<far@example.net>\r\nDATA\r\n")
    head = [t.reply() for _ in range(4)]
    t.send(b"Subject: smuggle %d\r\n\r\nbefore" % k + seq + SMUGGLED + b"\r\n.\r\nQUIT\r\n")
    rest = []
    while True:
        r = t.reply()
        if r is None:
            break
        rest.append(r)
    t.close()
    check([h[:3] for h in head] == ["250", "250", "250", "354"] and len(rest) == 2 and
          rest[0].startswith("250 2.0.0 Ok: queued") and rest[1].startswith("221"),
          "smuggling %s: one transaction, nothing answered for the smuggled commands (%s)"
          % (name, rest))
    # a smuggled message would be received in this session: once the node
    # has nothing queued, every message of it has been delivered
    wait_for(lambda: len(maildir(s4, "alice@example.test")) > len(box_before) and
             len(captured()) > len(cap_before), 20)
    check(wait_for(lambda: settled(s4), 20), "smuggling %s: the node's queues are empty" % name)
    box = sorted(set(maildir(s4, "alice@example.test")) - box_before)
    cap = sorted(set(captured()) - cap_before)
    check(len(box) == 1 and len(cap) == 1,
          "smuggling %s: exactly one message delivered (got %d) and one relayed (got %d)"
          % (name, len(box), len(cap)))
    body = open(box[0], "rb").read() if box else b""
    # the spool stores bare CR and bare LF as CRLF; Maildir files are LF
    # only: not one CR is left
    check(b"\nMAIL FROM:<evil@x.test>\n" in body and b"Subject: smuggle %d" % k in body and
          b"\r" not in body,
          "smuggling %s: delivered body holds the smuggled MAIL FROM line, LF only" % name)
    data = open(cap[0], "rb").read() if cap else b""
    inner = data[:-3] if data.endswith(b"\r\n.\r\n") else data
    check(b"\r\nMAIL FROM:<evil@x.test>\r\n" in data and not BARE_CR.search(data) and
          not BARE_LF.search(data) and not LENIENT_END.search(inner),
          "smuggling %s: relayed DATA holds it too, CRLF only, no other end of data (%r)"
          % (name, data[data.find(b"before"):][:40]))

# --- load from smtp-source -------------------------------------------------
before = len(maildir(s1, "alice@example.test"))
r = subprocess.run(["smtp-source", "-s", "10", "-m", "300", "-l", "2000", "-f",
                    "load@example.org", "-t", "alice@example.test", "%s:%d" % N1],
                   capture_output=True, text=True, timeout=120)
check(r.returncode == 0, "smtp-source: 300 messages in 10 sessions")
check(wait_for(lambda: len(maildir(s1, "alice@example.test")) >= before + 300, 60),
      "all 300 delivered to the Maildir")

# --- sessions per client address, idle timeout -------------------------------
ldif3 = os.path.join(W, "lab3.ldif")
N3 = ("127.0.10.5", 2525)
subprocess.run([sys.executable, mkorg, ldif3, "--bind", "%s:%d" % N3], check=True)
n3 = node(meshnode, ldif3, "N1", W + "/n3", "--set", "max_sessions_per_ip=3",
          "--set", "idle_timeout_s=1")
held = [Raw(*N3) for _ in range(3)]
check(all(h.greeting.startswith("220") for h in held), "3 sessions from one address")
extra = Raw(*N3)
check(extra.greeting.startswith("421 4.7.0"), "the 4th from that address: 421 4.7.0")
extra.close()
check(held[0].reply().startswith("421 4.4.2"), "idle for idle_timeout_s: 421 4.4.2")
for h in held:
    h.close()
check(wait_for(lambda: Raw(*N3).greeting.startswith("220")), "sessions freed: served again")

# SIGTERM: a message being committed still gets its 250, others hear 421
idle = Raw(*N3)
idle.cmd("EHLO bye.test")
busy = Raw(*N3)
busy.cmd("EHLO bye.test")
busy.cmd("MAIL FROM:<a@example.org>")
busy.cmd("RCPT TO:<alice@example.test>")
busy.cmd("DATA")
busy.send("Subject: last\r\n\r\nx\r\n.\r\n")
check(busy.reply().startswith("250"), "accepted before the stop")
n3.terminate()
check((idle.reply() or "").startswith("421 4.3.2"), "SIGTERM: an idle session hears 421 4.3.2")
check(n3.wait(20) == 0, "and the node exits 0")
done()
