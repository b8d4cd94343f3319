#!/usr/bin/env python3
"""A probe checks who answers, as a delivery does, on 127.0.69.x with the
organization's certificates: N1 (group Lab) is the bridgehead of the
routing-group connector Lab-Far, whose remote bridgehead is X1 (group Far,
on 127.0.69.2:2525). X1 is not running: N1's mail for bob@example.test
fails, glitch retry, N1 reports Lab-Far down and probes it. An impostor
then answers at X1's address -- SMTP with STARTTLS and a real organization
certificate, but X2's: the probe must not call the hop up. When the real
X1 answers, the probe does, and the mail is delivered to bob's mailbox on
X1. No master runs: the node's own reports route it.

Each check names, in "(mutation: ...)", the change to the code it was seen
to fail on.

usage: routing_probe.py MESHNODE MESHCTL RGMASTER
"""
import os
import re
import smtplib
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nodelib  # noqa: E402
import rgmlib as R  # noqa: E402
from grouplib import FASTNODE  # noqa: E402
from nodelib import check, maildir, node, wait_for, workdir  # noqa: E402

meshnode, meshctl, rgmaster = sys.argv[1:4]
W = workdir("rt-probe")
N1, X1 = "127.0.69.1", "127.0.69.2"
ldif = os.path.join(W, "lab.ldif")
with open(ldif, "w") as f:
    f.write("""dn: o=Lab
objectClass: mmOrganization
o: Lab

dn: cn=Lab,o=Lab
objectClass: mmRoutingGroup
cn: Lab

dn: cn=LAB-RGM,cn=Lab,o=Lab
objectClass: mmMaster
cn: LAB-RGM
mmRoutingAddress: 127.0.69.250:6910
mmPriority: 100

dn: cn=Far,o=Lab
objectClass: mmRoutingGroup
cn: Far

dn: cn=FAR-RGM,cn=Far,o=Lab
objectClass: mmMaster
cn: FAR-RGM
mmRoutingAddress: 127.0.69.251:6910
mmPriority: 100
""")
    for name, group, ip in (("N1", "Lab", N1), ("X1", "Far", X1), ("X2", "Far", "127.0.69.3")):
        f.write("""
dn: cn={n},cn={g},o=Lab
objectClass: mmServer
cn: {n}
mmFqdn: {l}.lab.test
mmRoutingAddress: {ip}:6911

dn: cn=SMTP,cn={n},cn={g},o=Lab
objectClass: mmVirtualServer
cn: SMTP
mmBind: {ip}:2525
mmFqdn: {l}.lab.test
mmRelayAllow: 127.0.0.0/8
""".format(n=name, g=group, l=name.lower(), ip=ip))
    f.write("""
dn: cn=Lab-Far,cn=Lab,o=Lab
objectClass: mmConnector
cn: Lab-Far
mmConnectorType: routing-group
mmCost: 10
mmLocalBridgehead: cn=SMTP,cn=N1,cn=Lab,o=Lab
mmTargetGroup: cn=Far,o=Lab
mmRemoteBridgehead: cn=SMTP,cn=X1,cn=Far,o=Lab

dn: cn=Far-Lab,cn=Far,o=Lab
objectClass: mmConnector
cn: Far-Lab
mmConnectorType: routing-group
mmCost: 10
mmLocalBridgehead: cn=SMTP,cn=X1,cn=Far,o=Lab
mmTargetGroup: cn=Lab,o=Lab
mmRemoteBridgehead: cn=SMTP,cn=N1,cn=Lab,o=Lab

dn: cn=Policy,o=Lab
objectClass: mmRecipientPolicy
cn: Policy
mmAuthoritativeDomain: example.test

dn: uid=bob,o=Lab
objectClass: inetOrgPerson
objectClass: mmRecipient
uid: bob
cn: bob
sn: bob
mail: bob@example.test
mmHomeServer: cn=X1,cn=Far,o=Lab
""")
pki = R.Pki(meshctl, ldif, W)
pki.issue("N1", "X1", "X2")
n1log = os.path.join(W, "N1.log")
node(meshnode, ldif, "N1", os.path.join(W, "n1"), "--tls", pki.dir("N1"), *FASTNODE)


def reports(what):
    with open(n1log, errors="replace") as f:
        return re.findall(r'connector "Lab-Far": bridgehead N1/SMTP reported ' + what, f.read())


c = smtplib.SMTP(N1, 2525)
c.sendmail("s@example.test", ["bob@example.test"], "Subject: far\r\n\r\nto bob\r\n")
c.quit()
check(wait_for(lambda: reports("down"), 30), "X1 not answering: N1 reports Lab-Far down")

# --- an impostor with X2's certificate at X1's address ---------------------------
x2 = pki.dir("X2")
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.path.join(x2, "X2.pem"), os.path.join(x2, "X2.key"))
ctx.load_verify_locations(os.path.join(x2, "ca.pem"))
ctx.verify_mode = ssl.CERT_OPTIONAL
lsock = socket.socket()
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind((X1, 2525))
lsock.listen(16)
lsock.settimeout(0.2)
served = []
stop = threading.Event()


def impostor():
    while not stop.is_set():
        try:
            s, _ = lsock.accept()
        except socket.timeout:
            continue
        try:
            s.settimeout(3)
            f = s.makefile("rb")
            s.sendall(b"220 x1.lab.test ESMTP\r\n")
            tls = False
            while True:
                line = f.readline()
                if not line:
                    break
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    s.sendall(b"250-x1.lab.test\r\n250 STARTTLS\r\n" if not tls else
                              b"250 x1.lab.test\r\n")
                elif verb == b"STAR":
                    s.sendall(b"220 2.0.0 go ahead\r\n")
                    s = ctx.wrap_socket(s, server_side=True)
                    f = s.makefile("rb")
                    tls = True
                    served.append("tls")
                elif verb == b"QUIT":
                    s.sendall(b"221 bye\r\n")
                    break
                else:
                    s.sendall(b"451 4.3.0 not today\r\n")
        except (OSError, ssl.SSLError):
            pass
        finally:
            s.close()


t = threading.Thread(target=impostor, daemon=True)
t.start()
# (mutation: probe.c without the mm_tls_expect_peer check -- the probe
# calls the hop up on X2's certificate)
check(wait_for(lambda: served, 10), "the probe reaches the impostor and starts TLS")
time.sleep(1.5)  # many probes at down_probe_interval_ms=100
check(not reports("up"), "a certificate of X2 at X1's address: Lab-Far stays down (%d probes "
      "served)" % len(served))
stop.set()
t.join()
lsock.close()

# --- the real X1 ---------------------------------------------------------------------
node(meshnode, ldif, "X1", os.path.join(W, "x1"), "--tls", pki.dir("X1"), *FASTNODE)
check(wait_for(lambda: reports("up"), 30), "the real X1: the probe reports Lab-Far up")
check(wait_for(lambda: len(maildir(os.path.join(W, "x1"), "bob@example.test")) == 1, 30),
      "the mail waiting at N1 reaches bob's mailbox on X1")

nodelib.done()
