#!/usr/bin/env python3
"""Write a small organization LDIF for tests and benchmarks.

One routing group "Lab" with one master, servers N1 (and N2 with --second),
an SMTP connector "Internet" (smtp:*) on N1 through --smarthost, recipients
alice@example.test (home N1) and bob@example.test (home N2, or N1).

  mkorg.py OUT --bind IP:PORT [--second IP:PORT] [--smarthost HOST:PORT]
           [--relay CIDR]... [--max-size N] [--max-hops N]
           [--mil HOST:PORT]   (a more specific smtp:*.mil connector on N1)
"""
import argparse
import base64
import hashlib
import os

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--bind", required=True)
p.add_argument("--second")
p.add_argument("--smarthost")
p.add_argument("--relay", action="append", default=[])
p.add_argument("--relay-first", action="append", default=[],
               help="relay allow-list of N1 only")
p.add_argument("--max-size", type=int)
p.add_argument("--max-hops", type=int)
p.add_argument("--mil")
p.add_argument("--mil-tls", default="none", help="mmTlsPolicy of the *.mil connector")
p.add_argument("--passwords", action="store_true",
               help="alice: userPassword alice-secret (clear), bob: bob-secret ({SSHA})")
p.add_argument("--internet-mx", action="store_true",
               help="the smtp:* connector delivers by MX (no smart host)")
a = p.parse_args()

ip1 = a.bind.rsplit(":", 1)[0]
out = []
w = out.append
w("dn: o=Lab\nobjectClass: mmOrganization\no: Lab\n")
w("dn: cn=Lab,o=Lab\nobjectClass: mmRoutingGroup\ncn: Lab\n")
w("dn: cn=LAB-RGM,cn=Lab,o=Lab\nobjectClass: mmMaster\ncn: LAB-RGM\n"
  "mmRoutingAddress: %s:6910\nmmPriority: 100\n" % ip1)


def server(name, bind, relay):
    ip = bind.rsplit(":", 1)[0]
    w("dn: cn=%s,cn=Lab,o=Lab\nobjectClass: mmServer\ncn: %s\nmmFqdn: %s.lab.test\n"
      "mmRoutingAddress: %s:6911\n" % (name, name, name.lower(), ip))
    vs = ("dn: cn=SMTP,cn=%s,cn=Lab,o=Lab\nobjectClass: mmVirtualServer\ncn: SMTP\n"
          "mmBind: %s\nmmFqdn: %s.lab.test\n" % (name, bind, name.lower()))
    if a.max_hops:
        vs += "mmMaxHopCount: %d\n" % a.max_hops
    if a.max_size:
        vs += "mmMaxMessageSize: %d\n" % a.max_size
    for r in relay:
        vs += "mmRelayAllow: %s\n" % r
    w(vs)


server("N1", a.bind, a.relay + a.relay_first)
if a.second:
    server("N2", a.second, a.relay)
if a.smarthost or a.internet_mx:
    w("dn: cn=Internet,cn=Lab,o=Lab\nobjectClass: mmConnector\ncn: Internet\n"
      "mmConnectorType: smtp\nmmCost: 1\nmmLocalBridgehead: cn=SMTP,cn=N1,cn=Lab,o=Lab\n"
      "mmAddressSpace: smtp:* 1\nmmTlsPolicy: none\n" +
      ("mmSmartHost: [%s]:%s\n" % tuple(a.smarthost.rsplit(":", 1)) if a.smarthost else ""))
if a.mil:
    w("dn: cn=Mil,cn=Lab,o=Lab\nobjectClass: mmConnector\ncn: Mil\n"
      "mmConnectorType: smtp\nmmCost: 1\nmmLocalBridgehead: cn=SMTP,cn=N1,cn=Lab,o=Lab\n"
      "mmAddressSpace: smtp:*.mil 1\nmmSmartHost: [%s]:%s\nmmTlsPolicy: %s\n"
      % (tuple(a.mil.rsplit(":", 1)) + (a.mil_tls,)))
w("dn: cn=Policy,o=Lab\nobjectClass: mmRecipientPolicy\ncn: Policy\n"
  "mmAuthoritativeDomain: example.test\n")


def ssha(pw):
    salt = os.urandom(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(pw.encode() + salt).digest() + salt).decode()


for uid, home in (("alice", "N1"), ("bob", "N2" if a.second else "N1")):
    e = ("dn: uid=%s,o=Lab\nobjectClass: inetOrgPerson\nobjectClass: mmRecipient\nuid: %s\n"
         "cn: %s\nsn: %s\nmail: %s@example.test\nmmHomeServer: cn=%s,cn=Lab,o=Lab\n"
         % (uid, uid, uid, uid, uid, home))
    if a.passwords:
        e += "userPassword: %s\n" % ("alice-secret" if uid == "alice" else ssha("bob-secret"))
    w(e)
with open(a.out, "w") as f:
    f.write("\n".join(out))
