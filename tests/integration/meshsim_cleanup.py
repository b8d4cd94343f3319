#!/usr/bin/env python3
"""Nothing outlives a meshsim run (DESIGN §8): no daemon and no nftables
table after a run that passed, one that failed, SIGINT, SIGTERM; after
SIGKILL of meshsim itself the daemons die with it (PR_SET_PDEATHSIG) and
the table it left is replaced at the next start; a daemon that dies
unasked fails the run, naming it and quoting its log.
Runs on examples/orgs/fabrikam.ldif (a master and two servers).

usage: meshsim_cleanup.py MESHSIM ORG.ldif
"""
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodelib import check, done, wait_for  # noqa: E402

meshsim, org = sys.argv[1], os.path.abspath(sys.argv[2])
# the run directories meshsim keeps when a run fails: ours go at the end
BEFORE = set(glob.glob("/tmp/meshsim.*"))
W = tempfile.mkdtemp(prefix="mm-meshsim-cleanup.")


def scenario(name, body):
    path = os.path.join(W, name)
    with open(path, "w") as f:
        f.write("org %s\n%s" % (org, body))
    return path


def daemons():
    """pids of daemons a meshsim run started (their directory is its copy)"""
    out = subprocess.run(["pgrep", "-f", "--", "--directory ldif:/tmp/meshsim\\."],
                         capture_output=True, text=True).stdout
    return out.split()


def table():
    r = subprocess.run(["nft", "list", "table", "inet", "meshsim"], capture_output=True,
                       text=True)
    return r.stdout if r.returncode == 0 else None


def clean(what):
    check(wait_for(lambda: daemons() == [] or None, 20, 0.2) is not None,
          "%s: no daemon left (%s)" % (what, daemons()))
    check(table() is None, "%s: no nftables table left" % what)


def started(p):
    """meshsim has started its daemons and reached its wait line"""
    return wait_for(lambda: len(daemons()) >= 3 or None, 60, 0.2)


LONG = "start all\nwait converged within 30s\ncut GW-01 MB-01\nwait 60s\n"

for sig, rc in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
    p = subprocess.Popen([meshsim, "run", scenario("long.sim", LONG)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    check(started(p) is not None, "%s: meshsim started three daemons" % sig.name)
    time.sleep(2)  # the cut is in place
    check(table() is not None and "drop" in table(), "%s: the cut's rules are there" % sig.name)
    p.send_signal(sig)
    out, _ = p.communicate(timeout=60)
    check(p.returncode == rc and "interrupted" in out,
          "%s: meshsim exits %d, saying so (%d)" % (sig.name, rc, p.returncode))
    clean(sig.name)

# SIGKILL of meshsim: the daemons die with it; the table stays until the
# next run starts (and goes when that one ends)
p = subprocess.Popen([meshsim, "run", scenario("long.sim", LONG)], stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
check(started(p) is not None, "SIGKILL: meshsim started three daemons")
time.sleep(2)
p.kill()
p.wait()
check(wait_for(lambda: daemons() == [] or None, 20, 0.2) is not None,
      "SIGKILL of meshsim: its daemons die with it (PR_SET_PDEATHSIG) (%s)" % daemons())
check(table() is not None and "drop" in table(), "SIGKILL: the table it left is there")
probe = scenario("probe.sim", "start all\nwait converged within 30s\nwait 1s\n")
p = subprocess.Popen([meshsim, "run", probe], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                     text=True)
check(started(p) is not None, "the next run starts")
t = table()
check(t is not None and "drop" not in t, "the next run made its table afresh (no old rule)")
out, _ = p.communicate(timeout=120)
check(p.returncode == 0, "the next run passes (%d)" % p.returncode)
clean("after the next run")

# two runs at once: the second waits for the first (one lock, one table)
a = subprocess.Popen([meshsim, "run", scenario("long.sim", LONG)], stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
check(started(a) is not None, "two runs: the first started its daemons")
b = subprocess.Popen([meshsim, "run", probe], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                     text=True)
first = b.stdout.readline()
time.sleep(2)
check("waiting for another meshsim run" in first and len(daemons()) == 3,
      "the second waits, saying so, and starts nothing (%r, %d daemons)"
      % (first.strip(), len(daemons())))
# a third that is interrupted while it waits touches nothing of the first's
# (mutation: live.c sim_live_teardown without its `if (w->locked)` -- the
# table deleted; seen failing)
c = subprocess.Popen([meshsim, "run", probe], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                     text=True)
c.stdout.readline()
c.send_signal(signal.SIGINT)
c.communicate(timeout=60)
t = table()
check(c.returncode == 130 and t is not None and "drop" in t and len(daemons()) == 3,
      "a waiting run interrupted: exit 130, the first's cut and daemons untouched (%d)"
      % c.returncode)
a.send_signal(signal.SIGINT)
a.wait(60)
out, _ = b.communicate(timeout=120)
check(b.returncode == 0, "... and runs, and passes, when the first has ended (%d)" % b.returncode)
clean("two runs")

# a run that fails
r = subprocess.run([meshsim, "run", scenario("false.sim", "start all\nexpect state Internet "
                                               "down at MB-01 within 1s\n")],
                   capture_output=True, text=True, timeout=120)
check(r.returncode == 1, "a false expectation: exit 1 (%d)" % r.returncode)
clean("a failed run")

# a daemon that dies unasked
p = subprocess.Popen([meshsim, "run", scenario("crash.sim", "start all\nwait 8s\n")],
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
check(started(p) is not None, "crash: three daemons")
time.sleep(1)
mb = subprocess.run(["pgrep", "-f", "--", "--server MB-01 "], capture_output=True,
                    text=True).stdout.split()
check(len(mb) == 1, "MB-01's meshnode is found (%s)" % mb)
if mb:
    os.kill(int(mb[0]), signal.SIGABRT)  # a crash (ASan takes SIGSEGV over)
out, _ = p.communicate(timeout=120)
check(p.returncode == 1 and "server MB-01 died unexpectedly (signal 6)" in out and
      "meshnode" in out.split("died unexpectedly")[1],
      "a daemon that died unasked fails the run, named, with its log's end (%d)" % p.returncode)
clean("a crashed daemon")
shutil.rmtree(W, ignore_errors=True)
for d in set(glob.glob("/tmp/meshsim.*")) - BEFORE:
    if os.path.isdir(d):
        shutil.rmtree(d, ignore_errors=True)
done()
