#!/usr/bin/env python3
"""meshnode with its directory in a real slapd, and SIGHUP: a recipient
added with ldapadd is unknown (550 5.1.1) until the node re-reads the
directory, then accepted and delivered. A broken LDIF directory on SIGHUP
is refused and the node keeps serving with the one it had.

usage: meshnode_ldap.py MESHNODE MESHCTL MKORG SCHEMA
"""
import os
import signal
import smtplib
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodelib import check, done, maildir, node, start, wait_for, workdir  # noqa

meshnode, mkorg, schema = sys.argv[1], sys.argv[3], sys.argv[4]
W = workdir("ldap")
N1 = ("127.0.18.1", 2525)
ldif = os.path.join(W, "lab.ldif")
subprocess.run([sys.executable, mkorg, ldif, "--bind", "%s:%d" % N1], check=True)

s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
os.makedirs(W + "/db")
with open(W + "/slapd.conf", "w") as f:
    f.write("""include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include %s
pidfile %s/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 104857600
suffix "o=Lab"
rootdn "cn=admin,o=Lab"
rootpw secret
directory %s/db
""" % (schema, W, W))
url = "ldap://127.0.0.1:%d/" % port
start(["slapd", "-f", W + "/slapd.conf", "-h", url, "-d", "0"], stderr=subprocess.DEVNULL)
check(wait_for(lambda: subprocess.run(["ldapwhoami", "-x", "-H", url],
                                      capture_output=True).returncode == 0),
      "slapd is up")
r = subprocess.run(["ldapadd", "-x", "-H", url, "-D", "cn=admin,o=Lab", "-w", "secret", "-f",
                    ldif], capture_output=True, text=True)
check(r.returncode == 0, "ldapadd of the organization")

s1 = W + "/n1"
p = node(meshnode, url + "o=Lab", "N1", s1)


def send(rcpt):
    try:
        c = smtplib.SMTP(*N1)
        c.sendmail("x@example.org", [rcpt], "Subject: hi\r\n\r\nx\r\n")
        c.quit()
        return 250
    except smtplib.SMTPRecipientsRefused as e:
        return e.recipients[rcpt][0]


check(send("alice@example.test") == 250, "directory from slapd: alice accepted")
check(wait_for(lambda: maildir(s1, "alice@example.test")), "and delivered")
check(send("carol@example.test") == 550, "carol unknown: 550")
carol = """dn: uid=carol,o=Lab
objectClass: inetOrgPerson
objectClass: mmRecipient
uid: carol
cn: carol
sn: carol
mail: carol@example.test
mmHomeServer: cn=N1,cn=Lab,o=Lab
"""
r = subprocess.run(["ldapadd", "-x", "-H", url, "-D", "cn=admin,o=Lab", "-w", "secret"],
                   input=carol, capture_output=True, text=True)
check(r.returncode == 0, "ldapadd carol")
p.send_signal(signal.SIGHUP)
check(wait_for(lambda: send("carol@example.test") == 250), "after SIGHUP carol is accepted")
check(wait_for(lambda: maildir(s1, "carol@example.test")), "and delivered")

# an LDIF directory broken on purpose: the reload is refused
ldif2 = os.path.join(W, "lab2.ldif")
N2 = ("127.0.18.2", 2525)
subprocess.run([sys.executable, mkorg, ldif2, "--bind", "%s:%d" % N2], check=True)
p2 = node(meshnode, "ldif:" + ldif2, "N1", W + "/n2")
with open(ldif2, "a") as f:
    f.write("\ndn: cn=Bad,cn=Lab,o=Lab\nobjectClass: mmConnector\ncn: Bad\n"
            "mmConnectorType: smtp\nmmCost: 0\n")
p2.send_signal(signal.SIGHUP)
log = lambda: open(os.path.join(W, "N1.log")).read()  # noqa: E731
check(wait_for(lambda: "keeping the one in use" in log()), "broken directory on SIGHUP: refused")
check("lab2.ldif:" in log(), "the refusal names file:line")
check(p2.poll() is None, "the node keeps running")
try:
    c = smtplib.SMTP(*N2)
    refused = c.sendmail("x@example.org", ["alice@example.test"], "Subject: still\r\n\r\nx\r\n")
    c.quit()
except (smtplib.SMTPException, OSError) as e:
    refused = e


def still():
    return [f for f in maildir(W + "/n2", "alice@example.test")
            if b"Subject: still" in open(f, "rb").read()]


check(refused == {} and wait_for(still), "and keeps accepting mail, and delivers it (%r)" % refused)
done()
