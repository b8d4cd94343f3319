#!/usr/bin/env python3
"""A member whose master is down says so once (127.0.96.x, mutual TLS,
fast retry settings: a round of dials every 100 to 300 ms). Nothing
listens at LAB-RGM's address for 10 s: N1's log says, in words, that the
connection was refused -- not "error:00000005:lib(0)::reason(5)" -- and
then keeps quiet about the same failure (the count comes once a minute),
where it used to write three lines a round. When LAB-RGM starts, N1 says
it reached it again, after how many failures.

Each check names, in "(mutation: ...)", the change to the code it was seen
to fail on.

usage: routing_quietlog.py MESHNODE MESHCTL RGMASTER
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grouplib  # noqa: E402
from nodelib import check, wait_for, workdir  # noqa: E402
import rgmlib as R  # noqa: E402

meshnode, meshctl, rgmaster = sys.argv[1:4]
W = workdir("rt-quietlog")
G = grouplib.Group(W, meshctl, "127.0.96.", nodes=2)
G.node(meshnode, "N1")
log = os.path.join(W, "N1.log")


def text():
    with open(log, errors="replace") as f:
        return f.read()


def about_master(t):
    """The lines about reaching the master: the member's and the
    transport's."""
    return [x for x in t.splitlines() if "LAB-RGM" in x or "no active master" in x
            or "127.0.96.250" in x]


check(wait_for(lambda: about_master(text()), 10), "N1 starts dialling LAB-RGM")
t0 = time.time()
time.sleep(10)  # the master is down this long: 30 or more rounds of dials
lines = about_master(text())
# (mutation: net691.c conn_lost without said_before, the failure said every
# time -- 2 lines a round, over 60 in 10 s)
check(len(lines) <= 4, "10 s with LAB-RGM down: %d lines about it in N1's log, 4 at most "
      "(%s)" % (len(lines), lines[:6]))
# (mutation: net691.c failure_words without the errno case -- the member
# logs "TLS: error:00000005:lib(0)::reason(5)")
check(any('failed: "connection refused"' in x for x in lines),
      "the failure is said in words: connection refused")
check("reason(5)" not in text() and "error:0000" not in text(),
      "no OpenSSL error number in the log")

# the master comes: one line says the streak is over, with its count
# (mutation: net691.c established without mm_repeat_ok -- no such line)
G.master(rgmaster, "LAB-RGM")
check(wait_for(lambda: re.search(r'master LAB-RGM at 127\.0\.96\.250:6910: works again after '
                                 r'(\d+) failures since', text()), 20),
      "LAB-RGM started: N1 says it works again, with the count")
m = re.search(r"works again after (\d+) failures", text())
check(m and int(m.group(1)) >= 20, "... %s failures counted in %.0f s" %
      (m.group(1) if m else "no", time.time() - t0))
check(wait_for(lambda: "member: LAB-RGM is the active master of Lab" in text(), 20),
      "and the member is connected to its master")
R.done()
