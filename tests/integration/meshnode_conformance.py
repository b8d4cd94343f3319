#!/usr/bin/env python3
"""What RFCs and mail readers expect of meshnode, with real peers:

- postmaster (RFC 5321 §4.5.1): <postmaster> and <Postmaster@DOMAIN> of
  every authoritative domain are accepted, case-insensitively, and
  delivered to the directory's postmaster recipient where it has one, else
  to SPOOL/mailstore/postmaster@DOMAIN/ on the receiving server;
- Maildir files have LF line ends;
- a NUL octet in a message: 554 5.6.0, nothing queued, the session goes on;
- each recipient keeps its own 4xx reply (tracking log, 5.4.7 DSN);
- Remote-MTA in a DSN: "ip; ADDRESS", no port;
- a required-TLS next hop whose certificate fails verification: 4.7.5, the
  connector reported down once and kept down by probes that verify as a
  delivery does; up again once the certificate is good.

Each check names the mutation it was seen to catch.

usage: meshnode_conformance.py MESHNODE MESHCTL MKORG SCHEMA
"""
import os
import re
import smtplib
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodelib import (PySMTP, Raw, check, done, files, last_error, maildir, make_pki,  # noqa
                     node, wait_for, workdir)

meshnode, meshctl, mkorg = sys.argv[1:4]
W = workdir("conf")
CA = workdir("conf-ca")
N1, N2, N3 = ("127.0.19.1", 2525), ("127.0.19.2", 2525), ("127.0.19.5", 2525)
SMART, MIL = "127.0.19.3:25250", "127.0.19.4:25250"
make_pki(W, CA, (("N1", "server", "N1"), ("N2", "server", "N2"),
                 ("mil.test", "server", "goodmil")))

ldif = os.path.join(W, "lab.ldif")
subprocess.run([sys.executable, mkorg, ldif, "--bind", "%s:%d" % N1, "--second", "%s:%d" % N2,
                "--relay", "127.0.0.0/8", "--mil", MIL, "--mil-tls", "required"], check=True)
# another organization of one server (called N1 there too) whose mail
# expires in 2 s, for the deferral and DSN checks: N3 below
ldif3 = os.path.join(W, "expiring.ldif")
subprocess.run([sys.executable, mkorg, ldif3, "--bind", "%s:%d" % N3, "--relay", "127.0.0.0/8",
                "--smarthost", SMART], check=True)
# a second authoritative domain whose postmaster is a recipient of N2
with open(ldif, "a") as f:
    f.write("\ndn: cn=Second,o=Lab\nobjectClass: mmRecipientPolicy\ncn: Second\n"
            "mmAuthoritativeDomain: second.test\n"
            "\ndn: uid=pm,o=Lab\nobjectClass: inetOrgPerson\nobjectClass: mmRecipient\n"
            "uid: pm\ncn: pm\nsn: pm\nmail: postmaster@second.test\n"
            "mmHomeServer: cn=N2,cn=Lab,o=Lab\n")


def refuse(addr):
    local = addr.split("@")[0]
    if local == "busy":
        return "451 4.3.2 busy right now"
    if local == "full":
        return "452 4.2.2 mailbox full"
    if local == "nouser":
        return "550 5.1.1 no such user here"
    return "250 2.1.5 ok"


smart = PySMTP(SMART, rcpt=refuse)
bad_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
bad_ctx.load_cert_chain(W + "/stranger.pem", W + "/stranger.key")
mil = PySMTP(MIL, tls=bad_ctx)

s1, s2 = W + "/n1", W + "/n2"
fast = ["--set", "glitch_retry_count=1", "--set", "glitch_retry_interval_ms=100",
        "--set", "down_probe_interval_ms=100", "--set", "retry_min_ms=300",
        "--set", "retry_max_ms=300", "--set", "connect_timeout_ms=2000",
        "--set", "master_retry_min_ms=200", "--set", "master_retry_max_ms=400"]
s3 = W + "/n3/n1"
os.makedirs(W + "/n3")
node(meshnode, ldif, "N1", s1, "--tls", W, *fast)
node(meshnode, ldif, "N2", s2, "--tls", W)
node(meshnode, ldif3, "N1", s3, "--set", "expire_s=2", *fast)
log1 = os.path.join(W, "N1.log")


def send(addr, sender, rcpts, subject):
    c = smtplib.SMTP(*addr)
    try:
        refused = c.sendmail(sender, rcpts, "Subject: %s\r\n\r\nline one\r\nline two\r\n"
                             % subject)
    except smtplib.SMTPRecipientsRefused as e:
        refused = e.recipients
    c.quit()
    return refused


def text(path):
    return open(path, "rb").read()


# --- postmaster ---------------------------------------------------------------
# (mutation: org.c categorize without the postmaster rule: 550 5.1.1 for
# Postmaster@example.test; server.c rcpt_cb without the bare <postmaster>
# rewrite: 501 5.1.3)
t = Raw(*N1)
t.cmd("EHLO client.test")
t.cmd("MAIL FROM:<someone@example.org>")
r1 = t.cmd("RCPT TO:<postmaster>")
r2 = t.cmd("RCPT TO:<POSTMASTER>")
t.cmd("RSET")
t.close()
check(r1.startswith("250") and r2.startswith("250"),
      "RCPT TO:<postmaster> and <POSTMASTER>: 250 (%s / %s)" % (r1, r2))
refused = send(N1, "someone@example.org", ["postmaster"], "bare postmaster")
check(not refused, "mail to <postmaster> accepted at N1")
refused = send(N2, "someone@example.org", ["Postmaster@EXAMPLE.test"], "domain postmaster")
check(not refused, "mail to <Postmaster@EXAMPLE.test> accepted at N2")
refused = send(N1, "someone@example.org", ["PostMaster@Second.TEST"], "second postmaster")
check(not refused, "mail to <PostMaster@Second.TEST> accepted at N1")
pm1 = wait_for(lambda: maildir(s1, "postmaster@example.test"))
check(pm1 and b"bare postmaster" in text(pm1[0]),
      "<postmaster> at N1: SPOOL/mailstore/postmaster@example.test/ on N1 (the first "
      "authoritative domain; N1's name is in none)")
pm2 = wait_for(lambda: maildir(s2, "postmaster@example.test"))
check(pm2 and b"domain postmaster" in text(pm2[0]),
      "<Postmaster@EXAMPLE.test> at N2: delivered on N2, the receiving server")
pm3 = wait_for(lambda: maildir(s2, "postmaster@second.test"))
check(pm3 and b"second postmaster" in text(pm3[0]),
      "<PostMaster@Second.TEST> at N1: the directory's postmaster recipient, on N2")
check(not maildir(s1, "postmaster@second.test"),
      "... and not a mailbox of N1's own")
r = subprocess.run([meshctl, "--directory", "ldif:" + ldif, "--json", "route", "--from",
                    "N2", "postmaster@example.test"], capture_output=True, text=True)
check(r.returncode == 0 and '"kind": "local"' in r.stdout.replace('":"', '": "'),
      "meshctl route: postmaster@example.test is local to the server asked (%s)"
      % r.stdout.strip()[:120])

# --- Maildir: LF line ends ------------------------------------------------------
# (mutation: maildir.c writing the spool's CRLF text as it is)
send(N1, "someone@example.org", ["alice@example.test"], "lf only")
box = wait_for(lambda: maildir(s1, "alice@example.test"))
body = text(box[0]) if box else b""
check(body and b"\r" not in body and b"line one\nline two\n" in body and
      b"\nReceived: from " in body,
      "Maildir file: LF line ends only, headers and body (%r)" % body[:80])

# --- NUL octets -------------------------------------------------------------------
# (mutation: smtp_server.c finish_message without the s->nul refusal: 250)
t = Raw(*N1)
t.cmd("EHLO client.test")
t.cmd("MAIL FROM:<someone@example.org>")
t.cmd("RCPT TO:<alice@example.test>")
t.cmd("DATA")
t.send(b"Subject: nul\r\n\r\na\x00b\r\n.\r\n")
rd = t.reply()
t.cmd("MAIL FROM:<someone@example.org>")
t.cmd("RCPT TO:<alice@example.test>")
t.send(b"BDAT 22 LAST\r\nSubject: nul2\r\n\r\nx\x00y\r\n")
rb = t.reply()
t.cmd("MAIL FROM:<someone@example.org>")
t.cmd("RCPT TO:<alice@example.test>")
t.cmd("DATA")
t.send(b"Subject: clean after nul\r\n\r\nok\r\n.\r\n")
rc = t.reply()
t.close()
check(rd.startswith("554 5.6.0") and rb.startswith("554 5.6.0"),
      "a NUL in DATA and in BDAT: 554 5.6.0 (%s / %s)" % (rd, rb))
check(rc.startswith("250"), "the session goes on: the next message 250 (%s)" % rc)
wait_for(lambda: any(b"clean after nul" in text(f) for f in maildir(s1, "alice@example.test")))
check(not any(b"Subject: nul" in text(f) for f in maildir(s1, "alice@example.test")),
      "nothing of the refused messages delivered")

# --- each recipient its own 4xx; Remote-MTA --------------------------------------
# (mutations: qmgr_link.c job_results not filling each[]: both recipients
# recorded with the last RCPT's reply; dsn.c printing the remote as
# "dns; ip:port")
send(N3, "alice@example.test", ["busy@example.net", "full@example.net"], "two deferrals")
send(N3, "alice@example.test", ["nouser@example.net"], "one failure")
tl = s3 + "/tracking.log"


def deferred(who):
    return [l for l in open(tl).read().splitlines()
            if "DEFERRED" in l and "<%s>" % who in l]


wait_for(lambda: deferred("busy@example.net") and deferred("full@example.net"))
db, df = deferred("busy@example.net"), deferred("full@example.net")
check(db and "451 4.3.2 busy right now" in db[0] and df and
      "452 4.2.2 mailbox full" in df[0],
      "tracking log: each recipient deferred with its own reply (%s | %s)"
      % (db[:1], df[:1]))


def dsn_with(word):
    return [f for f in maildir(s3, "alice@example.test") if word in text(f)]


dsn = wait_for(lambda: dsn_with(b"Subject: two deferrals"), 30)
d = text(dsn[0]).decode(errors="replace") if dsn else ""
busy = re.search(r"Final-Recipient: rfc822; busy@example.net\n(?:.*\n)*?Diagnostic-Code: (.*)", d)
full = re.search(r"Final-Recipient: rfc822; full@example.net\n(?:.*\n)*?Diagnostic-Code: (.*)", d)
check(busy and "451 4.3.2 busy right now" in busy.group(1) and full and
      "452 4.2.2 mailbox full" in full.group(1) and "Status: 5.4.7" in d,
      "5.4.7 DSN: each recipient's own last error (%s | %s)"
      % (busy and busy.group(1), full and full.group(1)))
dsn = wait_for(lambda: dsn_with(b"Subject: one failure"), 30)
d = text(dsn[0]).decode(errors="replace") if dsn else ""
check("Remote-MTA: ip; 127.0.19.3\n" in d and "25250" not in d.split("Remote-MTA")[-1][:30],
      "DSN: Remote-MTA: ip; 127.0.19.3, no port (%s)"
      % re.findall(r"Remote-MTA: .*", d))

# --- required TLS, a certificate that does not verify ----------------------------
# (mutations: relay_client.c conn_event without the 4.7.5 branch: the
# error reads "4.4.2 lost connection"; probe.c not checking the verify
# result (its TLS want forced to none): the next probe reports Mil up)
send(N1, "alice@example.test", ["general@army.mil"], "to the mil")
err = wait_for(lambda: last_error(meshctl, s1, "Mil"))
check(err is not None and err.startswith("4.7.5") and "verif" in err,
      "required TLS, the certificate fails verification: 4.7.5 (%s)" % err)


def logtext():
    return open(log1, errors="replace").read()


down = 'connector "Mil": bridgehead N1/SMTP reported down'
up = 'connector "Mil": bridgehead N1/SMTP reported up'
check(wait_for(lambda: down in logtext()), "Mil reported down")
time.sleep(2)  # twenty probe intervals: the probes must keep it down
check(up not in logtext() and logtext().count(down) == 1,
      "probes verify as a delivery does: Mil stays down, reported once")
check(not mil.messages, "nothing delivered to the unverified next hop")
good = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
good.load_cert_chain(W + "/goodmil.pem", W + "/goodmil.key")
mil.tls = good
check(wait_for(lambda: up in logtext(), 20), "a certificate of the CA: Mil reported up")
check(wait_for(lambda: mil.messages, 20), "... and the waiting mail delivered over TLS")
done()
