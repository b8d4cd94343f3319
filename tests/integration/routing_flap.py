#!/usr/bin/env python3
"""Flap damping with real processes: N1's Primary smart host (an smtp-sink)
is started and stopped every 200 ms for 10 s while mail keeps coming, with
glitch retry 1 x 20 ms and probes every 20 ms, so the detector sees every
flap. Damping (short half-life and hold for the test) lets N1 report
Primary down, up, down, and then holds it down: at most 4 reports in all.
Once the sink stays up, the figure decays and exactly one up is reported;
mail takes Primary again. Each check names the mutation of the code it was
seen to catch.

usage: routing_flap.py MESHNODE MESHCTL MKORG SCHEMA
"""
import os
import re
import smtplib
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nodelib  # noqa: E402
import routing_lib as rl  # noqa: E402
from nodelib import check, done, files, node, port_open, sink, wait_for, workdir  # noqa: E402

meshnode, meshctl = sys.argv[1:3]
W = workdir("rt-flap")
N1 = ("127.0.61.1", 2525)
PRIMARY, BACKUP = "127.0.61.3:25250", "127.0.61.4:25250"
ldif = os.path.join(W, "lab.ldif")
rl.org(ldif, "%s:%d" % N1, PRIMARY, BACKUP, master="127.0.61.1:6910")
log = os.path.join(W, "N1.log")


def logtext():
    return open(log, errors="replace").read()


def reports(text=None):
    return re.findall(r'connector "Primary": bridgehead N1/SMTP reported (down|up)',
                      logtext() if text is None else text)


def stop(p):
    p.kill()
    p.wait()
    nodelib.procs.remove(p)


sink(BACKUP, W + "/backup")
p_sink = sink(PRIMARY, W + "/primary")
ARGS = ("--set", "insecure=1",
        "--set", "glitch_retry_count=1", "--set", "glitch_retry_interval_ms=20",
        "--set", "down_probe_interval_ms=20", "--set", "retry_min_ms=50",
        "--set", "retry_jitter_pct=0", "--set", "connection_cache_ms=0",
        "--set", "connect_timeout_ms=500",
        "--set", "damp_half_life_ms=1000", "--set", "damp_max_hold_ms=3000")
n1 = node(meshnode, ldif, "N1", W + "/n1", *ARGS)

# mail all along, one message every 30 ms, so that a down Primary is seen
stop_mail = threading.Event()
sent = [0]


def mailer():
    while not stop_mail.is_set():
        try:
            c = smtplib.SMTP(*N1, timeout=10)
            c.sendmail("s@example.org", ["far@example.net"], "Subject: m%d\r\n\r\nx\r\n" % sent[0])
            c.quit()
            sent[0] += 1
        except (OSError, smtplib.SMTPException):
            pass
        time.sleep(0.03)


t = threading.Thread(target=mailer, daemon=True)
t.start()
check(wait_for(lambda: files(W + "/primary")), "mail goes to Primary before the flapping")

# --- 10 s of flapping: 200 ms down, 200 ms up ----------------------------------
end = time.time() + 10
flaps = 0
while time.time() < end:
    stop(p_sink)
    time.sleep(0.2)
    p_sink = sink(PRIMARY, W + "/primary")
    flaps += 1
    time.sleep(0.2)
during = reports()
print("     %d flaps, reports during them: %s" % (flaps, " ".join(during)))
# (mutation: damping.c mm_damp_penalize never suppressing: 50 reports)
check(0 < len(during) <= 4, "during %d flaps of Primary at most 4 reports (%d: %s)" %
      (flaps, len(during), " ".join(during)))
check(during[:3] == ["down", "up", "down"],
      "Primary reported down, up, down, then held (%s)" % " ".join(during[:4]))
check("connector Primary: flapping, held down" in logtext(),
      "the detector logs that it holds Primary down")
seen = len(re.findall(r"connector Primary: down from N1", logtext()))
# (mutation: connstate.c schedule() not probing a held connector that is
# up: the flaps after the hold went unseen, and the hold ended early)
check(seen >= flaps // 2, "while held, the probes see the flaps: %d downs of %d flaps "
      "(each adds to the figure)" % (seen, flaps))

# --- the sink stays up: one up once the figure decays -------------------------------
mark = len(logtext())
# (mutation: connstate.c not reporting the up at the release: no up came)
check(wait_for(lambda: "up" in reports(logtext()[mark:]), 20),
      "once the flapping stopped, Primary is reported up")
time.sleep(2)
after = reports(logtext()[mark:])
# (mutation: damping.c mm_damp_release at once, whatever the figure: an up
# right after each flap, and more than one)
check(during[-1:] == ["down"] and after == ["up"],
      "held down to the end of the flapping, then exactly one up (%s, then %s)" %
      (" ".join(during), " ".join(after)))
check(re.search(r"connector Primary: released \(figure \d+\)", logtext()) is not None,
      "the release is logged")
before = len(files(W + "/primary"))
check(wait_for(lambda: len(files(W + "/primary")) > before + 3, 10),
      "mail takes Primary again after the release")
stop_mail.set()
t.join(15)
check(port_open(*N1), "N1 went on taking mail through it all (%d messages)" % sent[0])

# --- held across a restart ----------------------------------------------------------
# Flapping again until held, then N1 restarts while the smart host stays up:
# the figure kept in SPOOL/damping, decayed by the time passed, holds
# Primary down after the restart too, and mail takes Backup until the
# release. (mutation: routing.c routing_start without load_damping -- the
# restarted node took Primary at once)
stop_mail.clear()
t = threading.Thread(target=mailer, daemon=True)
t.start()
mark = len(logtext())
while "connector Primary: flapping, held down" not in logtext()[mark:]:
    stop(p_sink)
    time.sleep(0.2)
    p_sink = sink(PRIMARY, W + "/primary")
    time.sleep(0.2)
stop_mail.set()
t.join(15)
n1.terminate()
n1.wait(20)
nodelib.procs.remove(n1)
check(os.path.exists(W + "/n1/damping"), "N1 keeps its connectors' damping in SPOOL/damping")
mark = len(logtext())
primary_before = len(files(W + "/primary"))
backup_before = len(files(W + "/backup"))
n1 = node(meshnode, ldif, "N1", W + "/n1", *ARGS)
check(re.search(r"flap damping of \d+ connectors from \S+/damping", logtext()[mark:]) and
      re.search(r"connector Primary: flap damping from the last run: figure \d+, held down",
                logtext()[mark:]),
      "the restarted N1 takes Primary's figure from SPOOL/damping: held down")
c = smtplib.SMTP(*N1, timeout=10)
c.sendmail("s@example.org", ["far@example.net"], "Subject: after restart\r\n\r\nx\r\n")
c.quit()
check(wait_for(lambda: len(files(W + "/backup")) > backup_before, 10) and
      len(files(W + "/primary")) == primary_before,
      "mail after the restart takes Backup: Primary is still held, though its smart host "
      "answers")
check(wait_for(lambda: re.search(r"connector Primary: released", logtext()[mark:]), 20),
      "the figure decays and Primary is released after the restart")
done()
