#!/usr/bin/env python3
"""AUTH against hostile directory data and what an authenticated user may
do, with real peers (Python's smtplib and ssl) against a real meshnode:

- a stored {SSHA}/{SHA}/{SSHA256} userPassword of 2,000 characters (users
  commonly may write their own) is no match, never a crash;
- after AUTH PLAIN/LOGIN a user sends only as an address of its own
  recipient entry (553 5.7.1 otherwise); an organization server's
  certificate is exempt; sender_login_mismatch=0 turns the rule off;
- AUTH EXTERNAL is offered only to a client that showed a certificate.

Each check names the mutation it was seen to catch.

usage: meshnode_auth.py MESHNODE MESHCTL MKORG SCHEMA
"""
import base64
import os
import smtplib
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nodelib  # noqa: E402
from nodelib import Raw, check, done, make_pki, node, wait_for, workdir  # noqa: E402

meshnode, meshctl, mkorg = sys.argv[1:4]
W = workdir("auth")
CA = workdir("auth-ca")
N1, N2 = ("127.0.18.1", 2525), ("127.0.18.2", 2525)
make_pki(W, CA, (("N1", "server", "N1"), ("N2", "server", "N2"), ("carol", "admin", "carol")))

ldif = os.path.join(W, "lab.ldif")
subprocess.run([sys.executable, mkorg, ldif, "--bind", "%s:%d" % N1, "--second", "%s:%d" % N2,
                "--relay", "127.0.0.0/8", "--passwords"], check=True)
# mallory, moe and max have stored values far longer than any digest and
# salt: base64 that decodes to 1,500 bytes. carol has two addresses.
long_b64 = base64.b64encode(b"A" * 1500).decode()
with open(ldif, "a") as f:
    for uid, scheme in (("mallory", "{SSHA}"), ("moe", "{SHA}"), ("max", "{SSHA256}")):
        f.write("\ndn: uid=%s,o=Lab\nobjectClass: inetOrgPerson\nobjectClass: mmRecipient\n"
                "uid: %s\ncn: %s\nsn: %s\nmail: %s@example.test\n"
                "mmHomeServer: cn=N1,cn=Lab,o=Lab\nuserPassword: %s%s\n"
                % (uid, uid, uid, uid, uid, scheme, long_b64))
    f.write("\ndn: uid=carol,o=Lab\nobjectClass: inetOrgPerson\nobjectClass: mmRecipient\n"
            "uid: carol\ncn: carol\nsn: carol\nmail: carol@example.test\n"
            "mail: c.jones@example.test\nmmHomeServer: cn=N1,cn=Lab,o=Lab\n"
            "userPassword: carol-secret\n")
s1, s2 = W + "/n1", W + "/n2"
n1 = node(meshnode, ldif, "N1", s1, "--tls", W)
node(meshnode, ldif, "N2", s2, "--tls", W, "--set", "sender_login_mismatch=0")

ctx = ssl.create_default_context(cafile=W + "/ca.pem")
ctx.check_hostname = False


def session(addr=N1, cert=None):
    x = ctx
    if cert:
        x = ssl.create_default_context(cafile=W + "/ca.pem")
        x.check_hostname = False
        x.load_cert_chain(W + "/%s.pem" % cert, W + "/%s.key" % cert)
    c = smtplib.SMTP(*addr)
    c.starttls(context=x)
    c.ehlo("client.test")
    return c


def auth_plain(c, user, pw):
    try:
        return c.docmd("AUTH", "PLAIN " + base64.b64encode(
            b"\0" + user.encode() + b"\0" + pw.encode()).decode())
    except (OSError, smtplib.SMTPException) as e:
        return 0, str(e).encode()


# --- a stored password longer than the decode buffer ---------------------------
# (mutation: password.c digest_ok without its length check, as before: the
# first AUTH PLAIN for mallory smashed the stack -- SIGSEGV or "stack
# smashing detected" in the plain build, stack-buffer-overflow under ASan)
for user in ("mallory", "moe", "max"):
    c = session()
    code, text = auth_plain(c, user + "@example.test", "anything")
    check(code == 535 and text.startswith(b"5.7.8"),
          "AUTH PLAIN for %s with a 2,000-character stored value: 535 5.7.8 (%d %s)"
          % (user, code, text))
    c.close()
if n1.poll() is not None:
    nodelib.procs.remove(n1)
    n1 = node(meshnode, ldif, "N1", s1, "--tls", W)
check(n1.poll() is None, "N1 still runs after AUTH against the long stored values")
c = session()
code, _ = auth_plain(c, "alice@example.test", "alice-secret")
check(code == 235, "and still authenticates alice: 235")
c.quit()

# --- the sender of an authenticated user --------------------------------------
# (mutation: server.c mail_cb returning NULL at once: carol sends as bob)


def mail_from(c, sender):
    return c.docmd("MAIL", "FROM:<%s>" % sender)


c = session()
code, _ = auth_plain(c, "carol@example.test", "carol-secret")
check(code == 235, "carol authenticates (AUTH PLAIN)")
for sender, want in (("bob@example.test", 553), ("ceo@example.test", 553),
                     ("carol@example.org", 553), ("carol@example.test", 250),
                     ("CAROL@Example.TEST", 250), ("c.jones@example.test", 250), ("", 250)):
    code, text = mail_from(c, sender)
    if code == 250:
        c.rset()
    check(code == want and (want == 250 or text.startswith(b"5.7.1")),
          "carol: MAIL FROM:<%s> -> %d (got %d %s)" % (sender, want, code, text))
c.quit()
# AUTH LOGIN under the other address of the same entry: the same owner
c = session()
c.user, c.password = "c.jones@example.test", "carol-secret"
code, _ = c.auth("LOGIN", c.auth_login)
code2, _ = mail_from(c, "carol@example.test")
check(code == 235 and code2 == 250,
      "carol as c.jones (AUTH LOGIN): MAIL FROM:<carol@...> 250 (%d %d)" % (code, code2))
c.rset()
code, _ = mail_from(c, "alice@example.test")
check(code == 553, "carol as c.jones: MAIL FROM:<alice@...> 553 (%d)" % code)
c.quit()
log = open(os.path.join(W, "N1.log"), errors="replace").read()
check('MAIL FROM "bob@example.test" from 127.0.0.1 refused: authenticated as carol@example.test'
      in log, "the refusal is logged, the peer's address quoted")

# an organization server relays others' mail: exempt (its certificate, AUTH
# EXTERNAL; the second check: AUTH PLAIN on top of the certificate).
# (mutation: mail_cb without its client.org_cert exemption)
c = session(cert="N2")
code, _ = c.docmd("AUTH", "EXTERNAL =")
code2, _ = mail_from(c, "bob@example.test")
check(code == 235 and code2 == 250,
      "N2's certificate, AUTH EXTERNAL: MAIL FROM:<bob@...> 250 (%d %d)" % (code, code2))
c.quit()
# the same server's certificate, then AUTH PLAIN as a user: still a
# server, which relays others' mail without any AUTH
c = session(cert="N2")
auth_plain(c, "carol@example.test", "carol-secret")
code, _ = mail_from(c, "bob@example.test")
check(code == 250, "N2's certificate and AUTH PLAIN as carol: MAIL FROM:<bob@...> 250 (%d)"
      % code)
c.quit()

# N2 runs with sender_login_mismatch=0 (mutation: mail_cb ignoring the
# setting)
c = session(N2)
auth_plain(c, "carol@example.test", "carol-secret")
code, _ = mail_from(c, "bob@example.test")
check(code == 250, "sender_login_mismatch=0: carol may send as bob (%d)" % code)
c.quit()

# --- AUTH EXTERNAL offered only with a client certificate -----------------------
# (mutation: smtp_server.c ehlo() offering EXTERNAL whatever client_cert says)
c = session()
check(c.esmtp_features.get("auth", "").split() == ["PLAIN", "LOGIN"],
      "no client certificate: AUTH PLAIN LOGIN (got %r)" % c.esmtp_features.get("auth"))
c.quit()
c = session(cert="carol")
check(c.esmtp_features.get("auth", "").split() == ["PLAIN", "LOGIN", "EXTERNAL"],
      "a client certificate (an admin's): AUTH PLAIN LOGIN EXTERNAL (got %r)"
      % c.esmtp_features.get("auth"))
code, _ = c.docmd("AUTH", "EXTERNAL =")
check(code == 535, "an admin's certificate is no server's: AUTH EXTERNAL 535 (%d)" % code)
c.quit()
t = Raw(*N1)
check("AUTH" not in t.cmd("EHLO clear.test"), "in the clear: no AUTH at all")
t.close()
done()
