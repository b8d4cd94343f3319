#!/usr/bin/env python3
"""SPOOL/table, the table a node starts from, without a master: the node
writes it at start (the directory's entries, incarnation 0, under what
masters issued); a restart starts from it, so an entry a master issued
(here crafted by the test, incarnation > 0) that marks a connector down
makes the node route around it from the first message, and survives a
SIGHUP; an entry of incarnation 0 gives way to the directory's; a corrupt
file is logged, kept aside and ignored. Each check names the mutation of
the code it was seen to catch.

usage: routing_table.py MESHNODE MESHCTL MKORG SCHEMA
"""
import json
import os
import re
import signal
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import routing_lib as rl  # noqa: E402
from nodelib import check, done, files, node, sink, wait_for, workdir  # noqa: E402

meshnode, meshctl = sys.argv[1:3]
W = workdir("rt-table")
N1 = ("127.0.62.1", 2525)
PRIMARY, BACKUP, OTHER = "127.0.62.3:25250", "127.0.62.4:25250", "127.0.62.5:25250"
ldif = os.path.join(W, "lab.ldif")
rl.org(ldif, "%s:%d" % N1, PRIMARY, BACKUP, master="127.0.62.1:6910")
s1 = W + "/n1"
table = s1 + "/table"
log = os.path.join(W, "N1.log")
sink(PRIMARY, W + "/primary")
sink(BACKUP, W + "/backup")
sink(OTHER, W + "/other")
count = [0]


def logtext():
    return open(log, errors="replace").read()


def start():
    return node(meshnode, ldif, "N1", s1, "--set", "insecure=1", "--set", "retry_min_ms=200")


def stop(n):
    n.terminate()
    n.wait(20)


def goes_to(where):
    """Send one message; the sink it reaches (or None)."""
    count[0] += 1
    subject = "t%d" % count[0]
    c = smtplib.SMTP(*N1)
    c.sendmail("s@example.org", ["far@example.net"], "Subject: %s\r\n\r\nx\r\n" % subject)
    c.quit()

    def where_now():
        for d in ("primary", "backup", "other"):
            for f in files(W + "/" + d):
                if ("Subject: %s\n" % subject) in open(f, errors="replace").read():
                    return d
        return None
    return wait_for(where_now, 15) == where


def query_table():
    c = rl.Conn("127.0.62.1:6911")
    c.admin("admin")
    st, js = c.ask("table", "json") or (None, "")
    c.close()
    return json.loads(js) if st == 0 else {}


def craft(inc, connector_down=None, bridgehead_down=None):
    """SPOOL/table as the node wrote it, with group Lab at (inc, 1, 1, 0)
    and a mark."""
    g = rl.table_groups(open(table, "rb").read())
    e = g["Lab"]
    rl.set_version(e, inc, 1, 1, 0)
    if connector_down:
        rl.mark_connector(e, connector_down)
    if bridgehead_down:
        rl.mark_bridgehead(e, bridgehead_down, "N1", "SMTP")
    with open(table + ".test", "wb") as f:
        f.write(rl.table_bytes(g))
    os.rename(table + ".test", table)


# --- written at start ----------------------------------------------------------
n1 = start()
# (mutation: routing_start without the save at start: no SPOOL/table)
check(os.path.exists(table), "the node writes SPOOL/table at start")
g = rl.table_groups(open(table, "rb").read()) if os.path.exists(table) else {}
check(list(g) == ["Lab"] and rl.version(g["Lab"]) == (0, 1, 0, 0),
      "SPOOL/table holds the directory's entry of group Lab, version (0, 1, 0, 0)")
check(not os.path.exists(table + ".new"), "no temporary file is left")
check(goes_to("primary"), "mail goes to Primary")
stop(n1)

# --- a restart starts from SPOOL/table ------------------------------------------
craft(5, connector_down="Primary")
n1 = start()
check(re.search(r"routing: starting from \S+/table \(1 groups\)", logtext()) is not None,
      "the node says it starts from SPOOL/table")
# (mutation: routing_start taking the directory's table over the saved one:
# the first message went to Primary)
check(goes_to("backup"), "an entry a master issued with Primary marked down: from the first "
      "message the node routes around Primary, though its smart host answers")
v = query_table()
lab = (v.get("groups") or [{}])[0]
check(lab.get("versions", {}).get("incarnation") == 5 and
      {c["name"]: c["state"] for c in lab.get("connectors", [])} ==
      {"Primary": "down", "Backup": "up"},
      "Query table: the node's view is the saved entry, incarnation 5, Primary down")
# SIGHUP: what a master issued stays (its master rebuilds it on its own SIGHUP)
n1.send_signal(signal.SIGHUP)
check(wait_for(lambda: "reload: directory" in logtext()), "SIGHUP: the directory is applied")
# (mutation: member.c merged() replacing entries of incarnation > 0 too:
# Primary came back with the directory's entry)
check(goes_to("backup"), "after SIGHUP the entry a master issued is kept: still around Primary")
stop(n1)
g = rl.table_groups(open(table, "rb").read())
check(rl.version(g["Lab"])[0] == 5, "SPOOL/table still holds incarnation 5 after the stop")

# --- an entry of incarnation 0 gives way to the directory's ------------------------
craft(0, connector_down="Primary")
n1 = start()
# (mutation: member.c merged() keeping entries of incarnation 0: mail to Backup)
check(goes_to("primary"), "an entry of incarnation 0 (never a master's) is replaced by the "
      "directory's at start: Primary is up")
stop(n1)

# --- a bridgehead the saved table holds down: down at start, probed at once -------
craft(6, bridgehead_down="Primary")
n1 = start()
check(wait_for(lambda: "connector Primary: starts down from N1, as the table has it"
               in logtext()), "the detector starts Primary down, as the saved table has it")
# (mutation: connstate.c sync() not probing a connector that starts down:
# it stayed down and the mail went to Backup)
check(wait_for(lambda: re.search(r'connector "Primary": bridgehead N1/SMTP reported up',
                                 logtext())),
      "it is probed at once, answers, and N1 reports its bridgehead up")
check(goes_to("primary"), "and mail takes Primary")
stop(n1)

# --- a saved table that puts N1 in another group: set aside ---------------------------
# (the server moved, and the operator restarted it; mutation: routing_start
# without the group_of comparison -- N1's view keeps the stale group "Aaa"
# holding N1 beside Lab, and its member machine joins "Aaa")
g = rl.table_groups(open(table, "rb").read())
e = g["Lab"]
rl.put(e, 1, "Aaa")
rl.set_version(e, 7, 1, 1, 0)
rl.mark_connector(e, "Primary")
with open(table + ".test", "wb") as f:
    f.write(rl.table_bytes({"Aaa": e}))
os.rename(table + ".test", table)
n1 = start()
check("has server N1 in group Aaa, the directory in Lab: starting from the directory's table"
      in logtext(), "a saved table with N1 in group Aaa, the directory in Lab: set aside, logged")
v = query_table()
check([x["name"] for x in v.get("groups", [])] == ["Lab"],
      "... N1's view holds Lab alone (%s)" % [x["name"] for x in v.get("groups", [])])
check(goes_to("primary"), "... and N1 routes as a member of Lab (Primary up)")
stop(n1)

# --- a corrupt SPOOL/table: logged, kept aside, ignored -------------------------------
with open(table, "wb") as f:
    f.write(b"\x0a\xff\xff\xff\x0fnot a table")
n1 = start()
# (mutation: load_table() taking a table that does not decode as empty: the
# node could not start, server not in the table)
check(re.search(r"routing: \S+/table is corrupt \(\d+ bytes, does not decode as a table\); "
                r"ignored, kept as table.corrupt", logtext()) is not None,
      "a corrupt SPOOL/table is logged and ignored")
check(open(s1 + "/table.corrupt", "rb").read().endswith(b"not a table"),
      "the corrupt file is kept as SPOOL/table.corrupt")
g = rl.table_groups(open(table, "rb").read())
check(rl.version(g["Lab"]) == (0, 1, 0, 0), "SPOOL/table is written again from the directory")
check(goes_to("primary"), "the node routes with the directory's table")

# --- SIGHUP without a master: the directory's entries follow it ------------------------
rl.org(ldif, "%s:%d" % N1, OTHER, BACKUP, master="127.0.62.1:6910")
n1.send_signal(signal.SIGHUP)
check(wait_for(lambda: logtext().count("reload: directory") >= 2), "SIGHUP applied")
# (mutation: routing_reload not calling mm_member_directory: the mail went
# to the old smart host)
check(goes_to("other"), "SIGHUP with a new smart host for Primary: mail follows the directory")
check(rl.table_groups(open(table, "rb").read())["Lab"] !=
      g["Lab"], "and SPOOL/table holds the new directory's entry")
done()
