#!/usr/bin/env python3
"""meshsim's exit statuses (DESIGN §8): a scenario that does not parse or
names what the organization lacks exits 65 naming FILE:LINE; --model exits
69 until the model mode exists; a usage error 64; and a false expectation
in a live run prints FILE:LINE: expected ...; seen ..., lets the run go on
to its end, and exits 1 -- with no daemon and no nftables table left.

usage: meshsim_errors.py MESHSIM ORG.ldif
"""
import glob
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
    ("an org that does not load", "org /nonexistent.ldif\n", 1, "does not load"),
]
for what, text, line, needle in BAD:
    rc, out, path = run("bad.sim", text % org if "%s" in text else text)
    check(rc == 65 and ("%s:%d:" % (path, line)) in out and needle in out,
          "%s: exit 65 naming line %d (%d, %s)" % (what, line, rc, out.strip()[:160]))

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
