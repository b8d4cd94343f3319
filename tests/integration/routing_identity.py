#!/usr/bin/env python3
"""Identity checks that fail closed, on 127.0.95.x with the organization's
certificates.

- A probe of an organization hop checks the certificate of the one server
  at that address. N1 (group Lab) is the bridgehead of the routing-group
  connector Lab-Far to X1 (group Far). The directory refuses two virtual
  servers at one address, but a table a master issued is not the
  directory: N1 starts from a SPOOL/table whose Far entry (incarnation 7)
  puts X2's virtual server at X1's address, so the address names two
  servers. X1 is down at first: N1 reports Lab-Far down and probes it.
  When the real X1 answers there, the probe must still fail, with a 4.7.5
  reason that says why (an address of several servers leaves no
  certificate to check), where it used to skip the check and call the hop
  up.
- meshctl --connect --expect KIND:NAME: exit 76 unless the peer's
  certificate names that object (DESIGN §7), at a node and at a master.

Each check names, in "(mutation: ...)", the change to the code it was seen
to fail on.

usage: routing_identity.py MESHNODE MESHCTL RGMASTER
"""
import json
import os
import re
import smtplib
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rgmlib as R  # noqa: E402
import routing_lib as rl  # noqa: E402
from grouplib import FASTNODE  # noqa: E402
from nodelib import check, node, wait_for, workdir  # noqa: E402

meshnode, meshctl, rgmaster = sys.argv[1:4]
W = workdir("rt-identity")
NET = "127.0.95."
N1, X1 = NET + "1", NET + "2"
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
mmRoutingAddress: {net}250:6910
mmPriority: 100

dn: cn=Far,o=Lab
objectClass: mmRoutingGroup
cn: Far

dn: cn=FAR-RGM,cn=Far,o=Lab
objectClass: mmMaster
cn: FAR-RGM
mmRoutingAddress: {net}251:6910
mmPriority: 100
""".format(net=NET))
    for name, group, ip in (("N1", "Lab", N1), ("X1", "Far", X1), ("X2", "Far", NET + "3")):
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
pki.issue("N1", "X1", "X2", "LAB-RGM", "admin")
admin = pki.dir("admin")
n1log = os.path.join(W, "N1.log")
n1tls, s1 = pki.dir("N1"), os.path.join(W, "n1")
first = node(meshnode, ldif, "N1", s1, "--tls", n1tls, *FASTNODE)
first.terminate()
first.wait(20)


def x2_at_x1(table):
    """SPOOL/table with group Far at (7, 1, 0, 0), X2's virtual server SMTP
    at X1's address (GroupEntry servers 5; Server virtual_servers 5;
    VirtualServer address 2)."""
    g = rl.table_groups(open(table, "rb").read())
    far = g["Far"]
    rl.set_version(far, 7, 1, 0, 0)
    for i, (f, v) in enumerate(far):
        sv = rl.decode(v) if f == 5 else None
        if sv and rl.get(sv, 1) == b"X2":
            vs = rl.decode(rl.get(sv, 5))
            rl.put(vs, 2, X1 + ":2525")
            rl.put(sv, 5, rl.encode(vs))
            far[i][1] = rl.encode(sv)
    with open(table + ".test", "wb") as f:
        f.write(rl.table_bytes(g))
    os.rename(table + ".test", table)


x2_at_x1(os.path.join(s1, "table"))
node(meshnode, ldif, "N1", s1, "--tls", n1tls, *FASTNODE)


def n1text():
    with open(n1log, errors="replace") as f:
        return f.read()


def reports(what):
    return re.findall(r'connector "Lab-Far": bridgehead N1/SMTP reported ' + what, n1text())


c = smtplib.SMTP(N1, 2525)
c.sendmail("s@example.test", ["bob@example.test"], "Subject: far\r\n\r\nto bob\r\n")
c.quit()
check(wait_for(lambda: reports("down"), 30), "X1 not answering: N1 reports Lab-Far down")

# --- the real X1 at an address of two servers ------------------------------------
# (mutation: probe.c probe_start without the refusal, skipping the check
# when the address names several servers as before -- X1's certificate
# passes and Lab-Far is reported up)
node(meshnode, ldif, "X1", os.path.join(W, "x1"), "--tls", pki.dir("X1"), *FASTNODE)
REASON = ("4.7.5 %s:2525 is the address of several servers (X1, X2): the hop's certificate "
          "cannot be checked" % X1)
check(wait_for(lambda: REASON in n1text(), 20),
      "the probe of %s:2525 fails closed: %r" % (X1, REASON))
time.sleep(1.5)  # many probes at down_probe_interval_ms=100, X1 answering all along
check(not reports("up"), "... and Lab-Far stays down while the real X1 answers there")

# --- meshctl --connect --expect ---------------------------------------------------------
R.master(rgmaster, ldif, "LAB-RGM", os.path.join(W, "state"), tls=pki.dir("LAB-RGM"),
         log=os.path.join(W, "LAB-RGM.log"))


def ctl(address, *args):
    return subprocess.run([meshctl, "--connect", address, "--tls", admin] + list(args),
                          capture_output=True, text=True, timeout=60)


N1R, RGM = N1 + ":6911", NET + "250:6910"
wait_for(lambda: ctl(RGM, "table").returncode == 0, 10)
for addr, expect, rc in ((N1R, "server:N1", 0), (RGM, "master:LAB-RGM", 0)):
    r = ctl(addr, "--expect", expect, "--json", "table")
    server = json.loads(r.stdout).get("server") if r.returncode == 0 else None
    check(r.returncode == rc and server == expect.split(":")[1],
          "--connect %s --expect %s: answered (%d %r)" % (addr, expect, r.returncode,
                                                          r.stderr.strip()))
# (mutation: connect.c check_peer comparing the names only -- master:N1
# at N1 and server:LAB-RGM at the master are answered)
for addr, expect, names in ((N1R, "server:X1", "server N1, not server X1"),
                            (N1R, "master:N1", "server N1, not master N1"),
                            (RGM, "server:LAB-RGM", "master LAB-RGM, not server LAB-RGM"),
                            (RGM, "admin:admin", "master LAB-RGM, not admin admin")):
    r = ctl(addr, "--expect", expect, "table")
    check(r.returncode == 76 and r.stdout == "" and names in r.stderr,
          "--connect %s --expect %s: exit 76, nothing printed, the certificate named (%d %r)"
          % (addr, expect, r.returncode, r.stderr.strip()))
for bad in ("N1", "server", "server:", "host:N1", "server:.x"):
    r = ctl(N1R, "--expect", bad, "table")
    check(r.returncode == 64 and "--expect" in r.stderr,
          "--expect %s: a usage error, 64 (%d)" % (bad, r.returncode))
r = subprocess.run([meshctl, "--directory", "ldif:" + ldif, "--expect", "server:N1", "table"],
                   capture_output=True, text=True)
check(r.returncode == 64, "--expect without --connect: 64 (%d)" % r.returncode)
R.done()
