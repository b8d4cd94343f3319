#!/usr/bin/env python3
"""STARTTLS and AUTH with real peers: openssl s_client and Python's ssl.
Certificates come from an organization CA made with the openssl tool; its
key stays in a directory of its own, never in the nodes' --tls directory
(the nodes refuse to start beside it: pki.py).
Checks the handshake, AUTH PLAIN/LOGIN against userPassword (clear and
{SSHA}), AUTH EXTERNAL with an organization certificate (and not with a
stranger's), relay rules after AUTH, plaintext injection after STARTTLS
(CVE-2011-0411), TLS between two nodes, and a connector whose TLS policy
is "required" failing closed against a next hop without STARTTLS.

usage: meshnode_tls.py MESHNODE MESHCTL MKORG SCHEMA
"""
import base64
import os
import smtplib
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodelib import (Raw, check, done, files, last_error, maildir, make_pki, node, sink,  # noqa
                     wait_for, workdir)

meshnode, meshctl, mkorg = sys.argv[1:4]
W = workdir("tls")          # the nodes' --tls directory
CA = workdir("tls-ca")      # the CA's key, apart
N1, N2 = ("127.0.17.1", 2525), ("127.0.17.2", 2525)


# "adminN2" is an admin's certificate that happens to be called N2, which
# earns no relaying: names are unique per kind
make_pki(W, CA, (("N1", "server", "N1"), ("N2", "server", "N2"), ("N2", "admin", "adminN2")))

ldif = os.path.join(W, "lab.ldif")
subprocess.run([sys.executable, mkorg, ldif, "--bind", "%s:%d" % N1, "--second", "%s:%d" % N2,
                "--smarthost", "127.0.17.3:25250", "--mil", "127.0.17.4:25250",
                "--mil-tls", "required", "--passwords"], check=True)
sink("127.0.17.3:25250", W + "/sink")
sink("127.0.17.4:25250", W + "/milsink")
s1, s2 = W + "/n1", W + "/n2"
node(meshnode, ldif, "N1", s1, "--tls", W, "--set", "retry_min_ms=600000")
node(meshnode, ldif, "N2", s2, "--tls", W)

# openssl s_client, verifying against the organization's CA
r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect", "%s:%d" % N1,
                    "-CAfile", W + "/ca.pem", "-servername", "n1.lab.test", "-quiet",
                    "-verify_return_error"], input="EHLO client.test\r\nQUIT\r\n",
                   capture_output=True, text=True, timeout=20)
# without a client certificate there is nothing for EXTERNAL to name: not
# offered (mutation: smtp_server.c ehlo() offering EXTERNAL whatever
# client_cert says)
check("250-AUTH PLAIN LOGIN\n" in r.stdout and "EXTERNAL" not in r.stdout and
      "221 2.0.0" in r.stdout and "CN = N1\nverify return:1" in r.stderr,
      "openssl s_client -starttls smtp: handshake verified, AUTH PLAIN LOGIN offered under "
      "TLS, EXTERNAL not (no client certificate)")

ctx = ssl.create_default_context(cafile=W + "/ca.pem")
ctx.check_hostname = False

c = smtplib.SMTP(*N1)
c.ehlo("client.test")
check("starttls" in c.esmtp_features and "auth" not in c.esmtp_features,
      "EHLO in the clear: STARTTLS offered, AUTH not")
try:
    c.sendmail("a@example.org", ["x@example.net"], "Subject: x\r\n\r\nx\r\n")
    check(False, "relay refused without AUTH")
except smtplib.SMTPRecipientsRefused as e:
    check(e.recipients["x@example.net"][0] == 550, "relay refused without AUTH: 550 5.7.1")
c.starttls(context=ctx)
c.ehlo("client.test")
try:
    c.login("alice@example.test", "wrong")
    check(False, "wrong password refused")
except smtplib.SMTPAuthenticationError as e:
    check(e.smtp_code == 535 and e.smtp_error.startswith(b"5.7.8"), "wrong password: 535 5.7.8")
c.quit()

c = smtplib.SMTP(*N1)
c.starttls(context=ctx)
c.ehlo("client.test")
code, _ = c.login("alice@example.test", "alice-secret")
check(code == 235, "AUTH (clear-text userPassword) over TLS: 235")
c.sendmail("alice@example.test", ["x@example.net"], "Subject: authed\r\n\r\nx\r\n")
c.quit()


def dumped(d, text):
    return any(text in open(f, errors="replace").read() for f in files(d))


check(wait_for(lambda: dumped(W + "/sink", "Subject: authed")),
      "authenticated client relays to the outside")
check(dumped(W + "/sink", "with ESMTPSA"), "Received: ... with ESMTPSA (RFC 3848)")

c = smtplib.SMTP(*N1)
c.starttls(context=ctx)
c.ehlo("client.test")
c.user, c.password = "bob@example.test", "bob-secret"
code, _ = c.auth("LOGIN", c.auth_login)
check(code == 235, "AUTH LOGIN with a {SSHA} userPassword: 235")
c.quit()


def external(cert, key):
    x = ssl.create_default_context(cafile=W + "/ca.pem")
    x.check_hostname = False
    x.load_cert_chain(cert, key)
    t = Raw(*N1)
    t.cmd("EHLO peer.test")
    t.cmd("STARTTLS")
    t.s = x.wrap_socket(t.s)
    t.buf = b""
    ehlo = t.cmd("EHLO peer.test")
    r = t.cmd("AUTH EXTERNAL =")
    t.close()
    check("250-AUTH PLAIN LOGIN EXTERNAL" in ehlo,
          "EHLO after STARTTLS with a client certificate offers AUTH EXTERNAL")
    return r


check(external(W + "/N2.pem", W + "/N2.key").startswith("235"),
      "AUTH EXTERNAL with an organization certificate: 235")
check(external(W + "/stranger.pem", W + "/stranger.key").startswith("535"),
      "AUTH EXTERNAL with a stranger's certificate (same CN): 535")

# CVE-2011-0411: a command pipelined after STARTTLS must not run inside TLS
t = Raw(*N1)
t.cmd("EHLO inject.test")
t.send("STARTTLS\r\nHELP\r\n")
check(t.reply().startswith("220"), "STARTTLS: 220")
t.s = ctx.wrap_socket(t.s)
t.buf = b""
first = t.cmd("NOOP")
check(first.startswith("250"), "plaintext pipelined after STARTTLS is discarded (got %r)" % first)
t.close()

# between two organization servers: TLS, and each knows the other
c = smtplib.SMTP(*N1)
c.sendmail("alice@example.test", ["bob@example.test"], "Subject: to bob\r\n\r\nhi\r\n")
c.quit()
check(wait_for(lambda: maildir(s2, "bob@example.test")), "N1 -> N2 delivered")
box = maildir(s2, "bob@example.test")
check(box and "with ESMTPS" in open(box[0]).read(), "N1 -> N2 over STARTTLS (ESMTPS)")

# TLS required, the next hop has no STARTTLS: fail closed, mail waits
c = smtplib.SMTP(*N1)
c.starttls(context=ctx)
c.login("alice@example.test", "alice-secret")
c.sendmail("alice@example.test", ["general@army.mil"], "Subject: secret\r\n\r\nx\r\n")
c.quit()


# With --tls an organization server relays only with its certificate: from
# N2's own address, without STARTTLS (or with a stranger's certificate), a
# relay gets 530 5.7.0 -- not 550, not a bounce -- and with N2's
# certificate it is accepted. (mutation: core/relay.c mm_relay_decide
# letting org addresses relay whatever org_tls says: 250 in the clear)
def from_n2(cert=None):
    sock = socket.create_connection(N1, 10, source_address=(N2[0], 0))
    t = Raw.__new__(Raw)
    t.s, t.buf = sock, b""
    t.greeting = t.reply()
    t.cmd("EHLO n2.lab.test")
    if cert:
        x = ssl.create_default_context(cafile=W + "/ca.pem")
        x.check_hostname = False
        x.load_cert_chain(*cert)
        t.cmd("STARTTLS")
        t.s = x.wrap_socket(t.s)
        t.buf = b""
        t.cmd("EHLO n2.lab.test")
    t.cmd("MAIL FROM:<alice@example.test>")
    r = t.cmd("RCPT TO:<far@example.net>")
    t.close()
    return r


r = from_n2()
check(r.startswith("530 5.7.0"), "an organization address without TLS: 530 5.7.0 (%s)" % r)
r = from_n2((W + "/stranger.pem", W + "/stranger.key"))
check(r.startswith("530 5.7.0"), "with a stranger's certificate: 530 5.7.0 (%s)" % r)
r = from_n2((W + "/N2.pem", W + "/N2.key"))
check(r.startswith("250"), "with the organization certificate: relayed (%s)" % r)
# (mutation: server.c org_server_cert not requiring kind server)
r = from_n2((W + "/adminN2.pem", W + "/adminN2.key"))
check(r.startswith("530 5.7.0"), "with an admin's certificate of the organization: 530 (%s)" % r)

# A user name a peer controls cannot forge a line of the node log: control
# characters never reach it (535 at the machine), and what does is quoted.
# (mutation: auth_cb logging user with %s instead of mm_logfmt_quote)
def auth_plain(user):
    c = smtplib.SMTP(*N1)
    c.starttls(context=ctx)
    c.ehlo("client.test")
    try:
        return c.docmd("AUTH", "PLAIN " + base64.b64encode(
            b"\0" + user.encode() + b"\0wrong").decode())
    finally:
        c.close()


code, _ = auth_plain("x\r\n2026-01-01T00:00:00.000Z meshnode: AUTH PLAIN admin: ok")
check(code == 535, "AUTH PLAIN with CR LF in the user name: 535 (%d)" % code)
auth_plain('x" from 10.0.0.1: ok')
log = wait_for(lambda: (lambda t: t if "10.0.0.1" in t else None)(
    open(os.path.join(W, "N1.log"), errors="replace").read()))
check(log is not None and not any(l.startswith("2026-01-01T00:00:00.000Z")
                                  for l in log.splitlines()) and
      'AUTH PLAIN "x\\" from 10.0.0.1: ok" from 127.0.0.1: refused' in log,
      "node log: the AUTH user name is quoted and escaped, no forged line")

err = wait_for(lambda: last_error(meshctl, s1, "Mil"))
check(err is not None and err.startswith("4.7.4"), "required TLS not offered: deferred, %s" % err)
check(not files(W + "/milsink"), "nothing sent in the clear to that next hop")
done()
