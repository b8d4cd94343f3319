#!/usr/bin/env python3
"""One table across the organization (DESIGN §5.2), with real processes:
rgmaster and meshnode over mutual TLS, groups joined by X-LINK2STATE.

1. The example organization (examples/orgs/contoso.ldif: three groups, two
   master candidates each): every server and every master candidate, the
   standbys too, reaches one digest, and every group's entry in it is live
   (incarnation above 0) and signed by a master of that group.
2. A chain of four groups G1-G2-G3-G4 (two servers each; Si1 the
   bridgehead) with a costlier backup G1-G4:
   - all reach one digest of signed entries;
   - G1-G2 reported down in G1 shows down in the table of S42, a server of
     the last group that is no bridgehead (master G4 relayed it);
   - G3-G4 reported down in G3: S12 of the first group sends mail for a
     recipient on S42 over the backup G1-G4 -- a decision only X-LINK2STATE
     lets G1 take (G3's connector is nothing G1 sees itself) -- and it is
     delivered;
   - G3-G4 up again: the next message goes G1-G2 again.
   Anti-entropy is off there (10 minutes): what moves, flooding moved.
3. Anti-entropy: an update lost while a bridgehead was frozen reaches it
   once it runs again, with nothing else changing.

usage: xlink_mesh.py MESHNODE MESHCTL RGMASTER CONTOSO_LDIF
"""
import os
import re
import signal
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import meshlib as M  # noqa: E402
from nodelib import check, done, maildir, wait_for, workdir  # noqa: E402

meshnode, meshctl, rgmaster, contoso = sys.argv[1:5]
BIN = (meshnode, meshctl, rgmaster)


def wait_converged(mesh, what, timeout=90):
    ok = wait_for(mesh.converged, timeout, 0.2)
    check(ok is not None, "%s: one digest, every group's entry signed by its master (%s)"
          % (what, mesh.digests() if not ok else list(ok.values())[0]["digest"][:16]))
    return ok


# --- 1. the example organization -------------------------------------------------
W = workdir("xlink-contoso")
CONTOSO_SERVERS = {"SEA-01": "127.0.1.1", "SEA-02": "127.0.1.2", "SEA-03": "127.0.1.3",
                   "NYC-01": "127.0.2.1", "NYC-02": "127.0.2.2", "NYC-03": "127.0.2.3",
                   "LON-01": "127.0.3.1", "LON-02": "127.0.3.2"}
CONTOSO_MASTERS = {"SEA-RGM1": "127.0.1.10", "SEA-RGM2": "127.0.1.11",
                   "NYC-RGM1": "127.0.2.10", "NYC-RGM2": "127.0.2.11",
                   "LON-RGM1": "127.0.3.10", "LON-RGM2": "127.0.3.11"}
c = M.Mesh(W, *BIN, contoso, {s: ip + ":691" for s, ip in CONTOSO_SERVERS.items()},
           {m: ip + ":691" for m, ip in CONTOSO_MASTERS.items()})
c.start_all()
# (mutations: xlinks_new never called in routing_start -- each group holds
# its own live entry and the directory's copy of the others: three digests;
# member.c offer() sending nothing -- masters never learn the others'
# entries; member.c judge() dropping every entry not from the master)
ts = wait_converged(c, "contoso, 8 servers and 6 master candidates")
if ts:
    roles = sorted(t["role"] for t in ts.values())
    check(roles.count("master-active") == 3 and roles.count("master-standby") == 3,
          "... the standbys too (%s)" % roles)
    t = ts["LON-02"]
    check({g["name"]: g["signed_by"] for g in t["groups"]} ==
          {"Seattle": "SEA-RGM1", "NewYork": "NYC-RGM1", "London": "LON-RGM1"},
          "LON-02 holds every group's entry as its active master signed it")
for n in list(c.procs):
    rc = c.stop(n)
    check(rc == 0, "%s exits 0 on SIGTERM (got %s)" % (n, rc))

# --- 2. a chain of four groups ----------------------------------------------------
W = workdir("xlink-chain")
groups, conns = M.chain(4, servers=2, backup=(1, 4, 10), net="127.0.7%d.")
RCPT = "dave@" + M.DOMAIN
mesh = M.Mesh.of(W, BIN, groups, conns, recipients=[("dave", "S42")])
# no anti-entropy while this runs: what moves here, flooding moved
mesh.start_all("--set", "xlink_digest_interval_ms=600000")
wait_converged(mesh, "chain of 4 groups, 8 servers and 4 masters")

# G1-G2 down at its only bridgehead S11: G1's master issues it, S11 floods
# it to S21, G2's master takes it from S21 (EntryOffer) and pushes it, ...
# S41 takes it from S31, G4's master pushes it to S42.
# (mutation: xlinks_table_changed() not flooding -- with anti-entropy off
# nothing moves after the start's round: this fails, as do the chain's
# convergence and the two checks on G3-G4 below)
check(mesh.report("S11", "G1-G2", True), "G1-G2 reported down at S11")
check(wait_for(lambda: M.connector_state(mesh.table("S42"), "G1-G2") == "down", 60, 0.1),
      "a connector down in the first group shows down at S42, in the last group, "
      "no bridgehead")
check(mesh.report("S11", "G1-G2", False), "G1-G2 reported up again")
wait_converged(mesh, "after G1-G2 up")


def send(subject):
    s = smtplib.SMTP("127.0.71.2", M.SMTP_PORT, timeout=30)
    s.sendmail("sender@" + M.DOMAIN, [RCPT], "Subject: %s\r\n\r\n%s\r\n" % (subject, subject))
    s.quit()


def delivered(subject):
    for f in maildir(mesh.spool("S42"), RCPT):
        with open(f, errors="replace") as h:
            if ("Subject: %s\n" % subject) in h.read().replace("\r\n", "\n"):
                return True
    return False


def s11_hop(subject_count):
    """S11's ROUTED lines for RCPT, in order: the next hop of each."""
    import re
    return re.findall(r"ROUTED \S+ to=<%s>.* next_hop=(\S+)" % RCPT, M.tracking(mesh.spool("S11")))


S21, S41 = "127.0.72.1:%d" % M.SMTP_PORT, "127.0.74.1:%d" % M.SMTP_PORT
send("primary")
check(wait_for(lambda: delivered("primary"), 60), "mail S12 -> S42 delivered over G1-G2-G3-G4")
check(wait_for(lambda: s11_hop(1)[:1] == [S21], 10), "... S11 sent it to S21 (%s)" % s11_hop(1))

# G3-G4 down in G3: only its entry, relayed by G2, tells G1 the primary
# path is broken. (mutation: no flooding, as above -- S12 never sees it,
# and S11 sends the mail to S21 again, where it waits for G3-G4)
check(mesh.report("S31", "G3-G4", True), "G3-G4 reported down at S31")
check(wait_for(lambda: M.connector_state(mesh.table("S12"), "G3-G4") == "down", 60, 0.1),
      "S12, in the first group, sees G3-G4 down")
send("backup")
check(wait_for(lambda: delivered("backup"), 60), "mail S12 -> S42 delivered over the backup")
check(wait_for(lambda: len(s11_hop(2)) >= 2, 10) and s11_hop(2)[1] == S41,
      "... S11 sent it to S41 over G1-G4 (%s)" % s11_hop(2))

check(mesh.report("S31", "G3-G4", False), "G3-G4 reported up again")
check(wait_for(lambda: M.connector_state(mesh.table("S12"), "G3-G4") == "up", 60, 0.1),
      "S12 sees G3-G4 up")
send("again")
check(wait_for(lambda: delivered("again"), 60), "mail S12 -> S42 delivered")
check(wait_for(lambda: len(s11_hop(3)) >= 3, 10) and s11_hop(3)[2] == S21,
      "... over the primary path again (%s)" % s11_hop(3))

# Exchanges run on a session kept open since the last one: a quiet round,
# DIGEST and "equal", is two short lines in TLS records (about 230 octets;
# with a new session, TCP, TLS handshake and AUTH, some 5 KB).
# (mutation: probe_xlink_again() always false -- a new session each time)
quiet = [int(m.group(1)) + int(m.group(2)) for m in re.finditer(
    r"equal, 0 taken, 0 dropped, 0 sent; \d+ octets out, \d+ in; on the wire (\d+) out, "
    r"(\d+) in", open(mesh.log("S21")).read())]
check(quiet and min(quiet) < 1000,
      "a quiet exchange on a kept session: %s octets on the wire" % (min(quiet) if quiet else "-"))

# G2's master down: its bridgehead S21 still takes G1's entries from S11 and
# passes them on to S31; G2's other server S22, whose only source is that
# master, does not learn them until it is back.
# (mutation: xlink_run.c round_of() doing nothing while no master is
# connected -- S21 neither takes nor passes on: S31 never sees it)
mark = len(open(mesh.log("S21")).read())
mesh.kill("G2-RGM")
check(wait_for(lambda: re.search(r'connection \d+ to "G2-RGM" (closed|failed)',
                                 open(mesh.log("S21")).read()[mark:]), 30, 0.1),
      "G2-RGM killed: S21 lost its master")
check(mesh.report("S11", "G1-G4", True), "G1-G4 reported down at S11")
check(wait_for(lambda: M.connector_state(mesh.table("S21"), "G1-G4") == "down", 60, 0.1),
      "with G2's master down, S21 takes G1's change from S11")
check(wait_for(lambda: 'xlink: with "S31"' in open(mesh.log("S21")).read()[mark:], 30, 0.1),
      "... and passes it on to S31")
check(M.connector_state(mesh.table("S22"), "G1-G4") == "up",
      "... while S22, a member of G2 only, waits for its master")
mesh.start_master("G2-RGM")
check(wait_for(lambda: M.connector_state(mesh.table("S22"), "G1-G4") == "down", 60, 0.1),
      "G2-RGM back: it learns G1's entry from S21 and S22 sees G1-G4 down")
check(mesh.report("S11", "G1-G4", False), "G1-G4 reported up again")
wait_converged(mesh, "chain at the end")
for n in list(mesh.procs):
    rc = mesh.stop(n)
    check(rc == 0, "%s exits 0 on SIGTERM (got %s)" % (n, rc))

# --- 3. anti-entropy: a lost update heals without mail ------------------------------
# Two groups, one server each. S21 is frozen (SIGSTOP) while G1-G2 goes
# down: S11's flood to it (and any retry queued behind it) times out
# (connect_timeout_ms, 500 ms here) and is lost. The freeze is shorter than the dead interval (5 s here), so that no
# master marks anything down and nothing else changes: once S21 runs again,
# nothing floods -- only the DIGEST every xlink_digest_interval_ms (1 s
# here) finds the difference.
# (mutation: tick_cb not running round_of -- S21 never learns it)
W = workdir("xlink-entropy")
groups, conns = M.chain(2, servers=1, net="127.0.7%d.", offset=6)
ae = M.Mesh.of(W, BIN, groups, conns)
ae.start_all("--set", "connect_timeout_ms=500", "--set", "dead_after=50",
             masters=["--set", "dead_after=50"])
wait_converged(ae, "two groups")
s21 = ae.procs["S21"]
s21.send_signal(signal.SIGSTOP)
check(ae.report("S11", "G1-G2", True), "G1-G2 reported down at S11 while S21 is frozen")
check(wait_for(lambda: 'xlink: with "S21" at' in open(ae.log("S11")).read(), 4, 0.05),
      "S11's exchange with S21 failed")
time.sleep(2.5)  # every retry S11 had queued fails too (each after 500 ms)
s21.send_signal(signal.SIGCONT)
check(wait_for(lambda: M.connector_state(ae.table("S21"), "G1-G2") == "down", 60, 0.1),
      "S21 learns G1-G2 down by anti-entropy")
wait_converged(ae, "two groups after the heal")
done()
