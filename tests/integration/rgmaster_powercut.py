#!/usr/bin/env python3
"""rgmaster's --state under the power-cut harness (docs/durability.md): the
incarnation a master took is on disk before it publishes anything, so a
power cut right after it became active keeps it, and the next start takes
one above. The state directory is made by another process before the
first start and not made durable (the master must make its entry durable
itself), then holds a number far above the wall clock, so that only the
number on disk -- never the clock -- puts the next incarnation above. 127.0.54.x, insecure (the harness models the disk,
not the network).

Each check names, in "(mutation: ...)", the change to the code it was seen
to fail on.

usage: rgmaster_powercut.py RGMASTER MESHCTL MKORG   (POWERCUT_LIB in the environment)
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import powercut  # noqa: E402
import rgmlib as R  # noqa: E402
from nodelib import check, start, wait_for, workdir  # noqa: E402

rgmaster, meshctl, mkorg = sys.argv[1:4]
W = workdir("rgm-powercut")
IP = "127.0.54.1"
ldif = R.org(mkorg, os.path.join(W, "lab.ldif"), IP)
root = os.path.join(W, "disk")
os.mkdir(root)
h = powercut.Harness(root, powercut.find_lib(rgmaster), ignore=())
state = os.path.join(root, "state")


def active_run():
    """Start under the harness, wait until it says it wrote its
    incarnation and is active, then SIGKILL and the power cut."""
    logpath = os.path.join(W, "rgm.log")
    with open(logpath, "ab") as log:
        start_at = log.tell()
        p = start([rgmaster, "--directory", "ldif:" + ldif, "--name", "LAB-RGM", "--state",
                   state, "--set", "insecure=1"] + R.FAST, ready="ready", stderr=log,
                  env=h.env(rgmaster))

    def said():
        with open(logpath, errors="replace") as f:
            f.seek(start_at)
            text = f.read()
        for line in text.splitlines():
            if "rgmaster: active: incarnation " in line:
                return int(line.split("active: incarnation ")[1].split(";")[0])
        return None

    inc = wait_for(said, 10)
    p.kill()
    p.wait()
    stats = h.cut()
    return inc, stats


def on_disk():
    try:
        with open(os.path.join(state, "incarnation")) as f:
            return f.read()
    except FileNotFoundError:
        return None


# --- DIR made by someone else, not yet durable -----------------------------------
# (an operator's mkdir, or a run killed between its mkdir and its fsync: the
# harness undoes a mkdir whose parent was never fsync'ed). (mutation:
# make_dir() returning at EEXIST without the fsync of the parent: DIR and
# the incarnation in it gone after the cut)
subprocess.run(["mkdir", state], env=h.env(), check=True)
inc1, stats = active_run()
check(inc1 is not None and on_disk() == "%d\n" % inc1,
      "--state DIR made by another process and not durable, power cut once active: "
      "DIR/incarnation holds %s (%r; %s)" % (inc1, on_disk(), dict(stats)))

# --- the number must survive the cut ------------------------------------------------
# A number far above the wall clock, written durably: the next incarnation
# comes from it, not from the clock, so "above the one before" holds only
# if the one before survived the cut. (mutations: write_once() without the
# fsync of DIR -- the rename undone, the old number back, the third
# incarnation equal to the second; without the fsync of the file)
high = 9000000000
with open(os.path.join(state, "incarnation"), "w") as f:
    f.write("%d\n" % high)
    f.flush()
    os.fsync(f.fileno())
dfd = os.open(state, os.O_RDONLY)
os.fsync(dfd)
os.close(dfd)
inc2, stats = active_run()
check(inc2 is not None and inc2 > high and on_disk() == "%d\n" % inc2,
      "the persisted %d over the clock: incarnation %s above it, and after the cut the file "
      "holds it (%r; %s)" % (high, inc2, on_disk(), dict(stats)))
inc3, stats = active_run()
check(inc3 is not None and inc2 is not None and inc3 > inc2 and on_disk() == "%d\n" % inc3,
      "third start: incarnation %s above %s, which survived the cut (%r; %s)"
      % (inc3, inc2, on_disk(), dict(stats)))
leftovers = sorted(os.listdir(state)) if os.path.isdir(state) else None
check(leftovers == ["incarnation"], "nothing else in DIR after the cuts (%s)" % leftovers)
R.done()
