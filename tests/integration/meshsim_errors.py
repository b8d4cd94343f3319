#!/usr/bin/env python3
"""meshsim's exit statuses (DESIGN §8): a scenario that does not parse or
names what the organization lacks exits 65 naming FILE:LINE; --model exits
69 until the model mode exists; a usage error 64; and a false expectation
in a live run prints FILE:LINE: expected ...; seen ..., lets the run go on
to its end, and exits 1 -- with no daemon and no nftables table left.

usage: meshsim_errors.py MESHSIM ORG.ldif
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodelib import check, done  # noqa: E402

meshsim, org = sys.argv[1], os.path.abspath(sys.argv[2])
# the run directories meshsim keeps when a run fails: ours go at the end
BEFORE = set(glob.glob("/tmp/meshsim.*"))
W = tempfile.mkdtemp(prefix="mm-meshsim-errors.")


def run(name, text, *args, timeout=120):
    path = os.path.join(W, name)
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([meshsim, "run", path, *args], capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stdout + r.stderr, path


# each bad scenario: its line, and what the message must say
# (mutations named: scenario.c without the check the case needs)
BAD = [
    ("unknown word", "# c\norg %s\nstart all\nfrobnicate SEA-01\n", 4, "no such line"),
    ("a name the organization lacks", "org %s\nstart all\nkill Z9\n", 3, "Z9"),
    ("a connector where a server is wanted", "org %s\nkill SEA-Internet\n", 2, "SEA-Internet"),
    ("a bad duration", "org %s\nstart all\nwait 5 parsecs\n", 3, "not a duration"),
    ("a bad duration unit", "org %s\nwait converged within 10y\n", 2, "not a duration"),
    ("expect before org", "# first\nexpect lost 0\norg %s\n", 2, "before org"),
    ("set after a start", "org %s\nstart all\nset ping_interval_ms=100\n", 3, "set after a start"),
    ("a key no daemon has", "org %s\nset no_such_key=1\n", 2, "no_such_key"),
    ("refuse a connector without a smart host", "org %s\nrefuse SEA-NYC\n", 2, "smart host"),
    ("a KIND: that does not exist", "org %s\nkill router:SEA-01\n", 2, "no such kind"),
    ("send without to", "org %s\nsend 3 from SEA-01 alice@contoso.test\n", 2, "send N from"),
    ("expect state without up|down", "org %s\nexpect state SEA-NYC sideways within 1s\n", 2,
     "up|down"),
    ("no org line", "# nothing\n\n", 2, "no org line"),
    ("an expectation without within", "org %s\nexpect digests equal\n", 2, "within T"),
    ("stop with two names", "org %s\nstop SEA-01 SEA-02\n", 2, "takes 1 name"),
    ("an address with two @", "org %s\nsend 1 from SEA-01 to a@b@c\n", 2, "no address"),
    ("a setting's value no number", "org %s\nset ping_interval_ms=fast\n", 2, "no whole"),
    ("a cut of one server with itself", "org %s\ncut server:SEA-01 SEA-01\n", 2, "twice"),
    ("an org that does not load", "org /nonexistent.ldif\n", 1, "does not load"),
]
for what, text, line, needle in BAD:
    rc, out, path = run("bad.sim", text % org if "%s" in text else text)
    check(rc == 65 and ("%s:%d:" % (path, line)) in out and needle in out,
          "%s: exit 65 naming line %d (%d, %s)" % (what, line, rc, out.strip()[:160]))

# a name two objects of the organization bear (a connector NYC-01 in
# Seattle, the server NYC-01 in New York): ambiguous without KIND:
# (mutation: scenario.c resolve_name without its "hit & (hit - 1)" test)
amb = os.path.join(W, "amb.ldif")
with open(org) as f, open(amb, "w") as g:
    g.write(f.read() + "\ndn: cn=NYC-01,cn=Seattle,o=Contoso\nobjectClass: mmConnector\n"
            "cn: NYC-01\nmmConnectorType: routing-group\nmmCost: 10\n"
            "mmLocalBridgehead: cn=SMTP,cn=SEA-01,cn=Seattle,o=Contoso\n"
            "mmTargetGroup: cn=NewYork,o=Contoso\n"
            "mmRemoteBridgehead: cn=SMTP,cn=NYC-02,cn=NewYork,o=Contoso\n")
rc, out, path = run("amb.sim", "org %s\nexpect state NYC-01 up within 1s\n" % amb)
check(rc == 65 and (path + ":2:") in out and "KIND:" in out,
      "a name a server and a connector bear: 65 at line 2, asking for KIND: (%d, %s)"
      % (rc, out.strip()[:160]))
rc, out, path = run("amb2.sim", "org %s\nexpect state server:NYC-01 up within 1s\n" % amb,
                    "--model")
check(rc == 69, "... and server:NYC-01 resolves (on to --model's 69) (%d, %s)"
      % (rc, out.strip()[:160]))

rc, out, _ = run("ok.sim", "org %s\nstart all\n" % org, "--model")
check(rc == 69 and "model" in out, "--model: exit 69 until the model mode exists (%d, %s)"
      % (rc, out.strip()))
rc, out, _ = run("ok.sim", "org %s\n" % org, "--bogus")
check(rc == 64 and "usage" in out, "an unknown option: exit 64 with the usage (%d)" % rc)

# a false expectation, live: the run goes on to the next line and exits 1
rc, out, path = run("false.sim",
                    "org %s\nstart SEA-RGM1 SEA-01 SEA-02\nwait converged within 30s\n"
                    "expect state SEA-NYC down at SEA-01 within 1s\n"
                    "expect state SEA-NYC up at SEA-01 within 10s\n" % org)
check(rc == 1 and ("%s:4: expected SEA-NYC down at SEA-01; seen SEA-NYC up" % path) in out,
      "a false expectation: exit 1, FILE:4: expected ...; seen ... (%d)" % rc)
check("line 5: SEA-NYC up at SEA-01: ok" in out, "... and the run went on to line 5")
# the accounting, message by message: two messages delivered; then the
# test takes one copy away and doubles the other, behind meshsim's back:
# 1 lost and 1 duplicated (mutations: account.c counting no lost, no
# duplicate); and two bounced by expiry are bounced, not lost (mutation:
# account.c ndrs() taking no NDR line). Each seen failing; so were the
# ambiguous-name and twin-name mutations below.
fab = os.path.join(os.path.dirname(org), "fabrikam.ldif")
path = os.path.join(W, "count.sim")
with open(path, "w") as f:
    f.write("org %s\nstart all\nwait converged within 30s\n"
            "send 2 from GW-01 to gina@fabrikam.test\n"
            "expect delivered 2 to gina@fabrikam.test within 30s\nwait 4s\n"
            "expect lost 0\nexpect duplicates 0\n" % fab)
p = subprocess.Popen([meshsim, "run", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                     text=True)
lines, work = [], None
for line in p.stdout:
    lines.append(line)
    if work is None and "work in " in line:
        work = line.split("work in ")[1].strip()
    if "line 5: 2 delivered" in line and work:
        boxes = glob.glob(work + "/spool-MB-01/mailstore/gina@fabrikam.test/new/*")
        check(len(boxes) == 2, "two copies in gina's Maildir (%d)" % len(boxes))
        if len(boxes) == 2:
            shutil.copy(boxes[1], boxes[1] + ".copy")
            os.unlink(boxes[0])
p.wait(120)
out = "".join(lines)
check(p.returncode == 1 and ("%s:7: expected lost 0; seen 1 lost" % path) in out and
      ("%s:8: expected duplicates 0; seen 1 duplicated" % path) in out,
      "one copy taken away, one doubled: 1 lost, 1 duplicated, exit 1 (%d)" % p.returncode)
bounce = os.path.join(W, "bounce.sim")
with open(bounce, "w") as f:
    f.write("org %s\nset expire_s=3\nstart all\nwait converged within 30s\n"
            "refuse Internet\nrefuse Internet-Backup\n"
            "send 2 from MB-01 to away@example.org\nwait 8s\n"
            "expect all delivered within 20s\nexpect lost 0\n" % fab)
r = subprocess.run([meshsim, "run", bounce, "--report", os.path.join(W, "rep")],
                   capture_output=True, text=True, timeout=120)
m = json.load(open(os.path.join(W, "rep", "report.json")))["messages"]
check(r.returncode == 0 and m["bounced"] == 2 and m["lost"] == 0,
      "two messages expired (5.4.7): bounced 2, lost 0, passed (%d, %s)" % (r.returncode, m))

# names are unique per kind only: a master S8-01 (Northwind's S9 master
# renamed) beside the server S8-01 runs live, each with its own
# certificate (mutation: live.c issuing both in one `pki issue` -- 64,
# the run exits 70)
twin = os.path.join(W, "twin.ldif")
with open(os.path.join(os.path.dirname(org), "northwind.ldif")) as f, open(twin, "w") as g:
    g.write(f.read().replace("dn: cn=S9-RGM,cn=S9,o=Northwind", "dn: cn=S8-01,cn=S9,o=Northwind")
            .replace("cn: S9-RGM\n", "cn: S8-01\n"))
rc, out, path = run("twin.sim", "org %s\nstart all\nwait converged within 60s\n"
                    "expect state master:S8-01 up at S9-02 within 10s\n"
                    "send 2 from S9-02 to user-s8@northwind.test\n"
                    "expect delivered 2 to user-s8@northwind.test within 30s\n" % twin)
check(rc == 0, "a master and a server named S8-01: the run passes (%d, %s)"
      % (rc, out.strip()[-200:]))

ps = subprocess.run(["pgrep", "-f", "--", "--directory ldif:/tmp/meshsim."],
                    capture_output=True, text=True).stdout.split()
check(ps == [], "no daemon left behind (%s)" % ps)
nft = subprocess.run(["nft", "list", "table", "inet", "meshsim"], capture_output=True)
check(nft.returncode != 0, "no nftables table left behind")
shutil.rmtree(W, ignore_errors=True)
for d in set(glob.glob("/tmp/meshsim.*")) - BEFORE:
    if os.path.isdir(d):
        shutil.rmtree(d, ignore_errors=True)
done()
