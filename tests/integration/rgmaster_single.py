#!/usr/bin/env python3
"""One rgmaster candidate, real processes on 127.0.50.x: `ready`, then
`meshctl --connect` (mutual TLS, an admin certificate) for the table in
JSON and text against the offline view, the incarnation and --state
(read, written, deleted), SIGHUP with a good and a bad directory, the
verbs a master refuses, and the plain path (insecure=1) with raw frames.

Each check names, in "(mutation: ...)", the change to the code it was seen
to fail on.

usage: rgmaster_single.py RGMASTER MESHCTL MKORG
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rgmlib as R  # noqa: E402
from nodelib import check, wait_for, workdir  # noqa: E402

rgmaster, meshctl, mkorg = sys.argv[1:4]
W = workdir("rgm-single")
IP = "127.0.50.1"
ADDR = IP + ":6910"
ldif = R.org(mkorg, os.path.join(W, "lab.ldif"), IP, far=True, second="127.0.50.2")
pki = R.Pki(meshctl, ldif, W)
pki.issue("LAB-RGM", "N1", "admin")
tls, admin, n1tls = pki.dir("LAB-RGM"), pki.dir("admin"), pki.dir("N1")


def member():
    """N1 as a member of the master (in Python): a master that has heard
    no member publishes nothing."""
    return R.Member(ADDR, "N1", cert=(os.path.join(n1tls, "N1.pem"),
                                      os.path.join(n1tls, "N1.key")),
                    cafile=os.path.join(n1tls, "ca.pem"))
state = os.path.join(W, "state")
log = os.path.join(W, "LAB-RGM.log")

wall0 = int(time.time())
p = R.master(rgmaster, ldif, "LAB-RGM", state, tls, log=log)
check(p.poll() is None, "rgmaster prints ready and runs (mutation: ready printed before "
      "mm_net_listen, with the listen failing: not caught here, see rgmaster_exit)")


def published():
    t = R.table(meshctl, ADDR, admin)
    v = R.version(t)
    return t if v and v[0] >= wall0 else None


# no member yet: past the grace the master publishes nothing (mutation:
# mm_m_publish without the any_reported check -- Lab published at the
# master's incarnation with every server down)
check(wait_for(lambda: R.log_has(log, "no member has reported: publishing nothing"), 10),
      "no member has reported within the grace: the master says it publishes nothing")
t = R.table(meshctl, ADDR, admin) or {}
check((R.version(t) or (None,))[0] == 0,
      "... and its table still holds the directory's Lab, incarnation 0 (%s)" % (R.version(t),))
mb = member()
t = wait_for(published, 10) or {}
check(t.get("server") == "LAB-RGM" and t.get("role") == "master-active",
      "--connect --json table: server LAB-RGM, role master-active (%s) (mutation: render() "
      "passing NULL for the server)" % ({k: t.get(k) for k in ("server", "role")}))
v = R.version(t) or (0, 0, 0, 0)
check(v[0] >= wall0,
      "the incarnation %s is at least the wall-clock seconds at start, %d (mutation: "
      "wall_ms() on CLOCK_MONOTONIC)" % (v[0], wall0))

off = R.offline(meshctl, ldif)
check([g["name"] for g in t.get("groups", [])] == [g["name"] for g in off["groups"]],
      "the same groups as offline, in the same order: %s (mutation: mm_master_start() "
      "taking its own group only)" % [g["name"] for g in t.get("groups", [])])
check(R.group(t, "Far") == R.group(off, "Far") and t.get("organization") == "Lab",
      "group Far (not ours) is exactly the offline entry, organization Lab (mutation: "
      "r->org not set, organization \"\")")
lab = R.group(t) or {}
check([(x["name"], x["state"]) for x in lab.get("servers", [])] == [("N1", "up"), ("N2", "down")],
      "N1 (the member) up, N2, which never connected, down once the master published (%s) "
      "(mutation: mm_m_publish() not marking absent servers down)" % lab.get("servers"))

# text: the same renderer, the same digest
r = R.ctl(meshctl, ADDR, admin, "table")
lines = r.stdout.split("\n")
check(r.returncode == 0 and lines[0] == "Answered by LAB-RGM (master-active)" and
      lines[1:2] == ["Organization Lab: 2 routing groups"] and
      lines[2:3] == ["Digest %s" % t.get("digest")],
      "--connect table (text): answered by, organization, and the JSON's digest (%r) "
      "(mutation: render() ignoring json, JSON for text)" % lines[:3])
offtext = subprocess.run([meshctl, "--directory", "ldif:" + ldif, "table"],
                         capture_output=True, text=True).stdout
far_live = r.stdout[r.stdout.find("Routing group Far"):]
far_off = offtext[offtext.find("Routing group Far"):offtext.find("Routing group Lab")]
check(far_off and far_live.startswith(far_off),
      "group Far in text: exactly the offline text, one renderer for both (mutation: "
      "table_text() writing the candidates' priority only offline)")

# the verbs a master does not answer
r = R.ctl(meshctl, ADDR, admin, "--json", "route", "bob@example.test")
try:
    err = json.loads(r.stderr)
except ValueError:
    err = {}
check(r.returncode == 64 and r.stdout == "" and err.get("role") == "master-active" and
      err.get("server") == "LAB-RGM" and "a master answers table only" in err.get("error", ""),
      "route: exit 64, the JSON error on stderr naming server and role (%d %r) (mutation: "
      "print_body() to stdout whatever the status)" % (r.returncode, r.stderr))
for verb, arg in (("queues", None), ("queue", "q1"), ("retry", "q7"), ("freeze", "q7"),
                  ("thaw", "q7")):
    r = R.ctl(meshctl, ADDR, admin, verb, *([arg] if arg else []))
    check(r.returncode == 64 and "rgmaster \"LAB-RGM\": %s is a node's command" % verb
          in r.stderr, "%s: exit 64, one text line (%d %r) (mutation: query() answering "
          "every verb with the table)" % (verb, r.returncode, r.stderr.strip()))
r = R.ctl(meshctl, ADDR, admin, "graph")
check(r.returncode == 64 and "--connect answers table" in r.stderr,
      "--connect graph: 64 from meshctl itself (mutation: connect_() sending any verb)")
r = R.ctl(meshctl, ADDR, admin, "table", "extra")
check(r.returncode == 64 and "table takes no operands" in r.stderr,
      "--connect table extra: 64 from meshctl itself (mutation: connect_() without the "
      "operand count)")

# --state: what it wrote, and what it reads back
written = R.read(os.path.join(state, "incarnation"))
check(written == "%d\n" % v[0], "--state DIR/incarnation holds %r, the table's "
      "incarnation %s (mutation: persist() returning 0 without writing)" % (written, v[0]))
check(sorted(os.listdir(state)) == ["incarnation"], "and nothing else, no temporary file "
      "(mutation: write_once() without the rename)")
rc = R.terminate(p)
mb.close()
check(rc == 0, "SIGTERM: exit 0 (%s) (mutation: stop_cb() calling exit(1))" % rc)
check(R.log_has(log, "signal 15: stopping"), "the stop is logged")

def incarnation_above(floor):
    """The live table once the master published above floor ({} if not),
    a member connected to it."""
    global mb
    mb.close()
    mb = member()
    return wait_for(lambda: (lambda t: t if (R.version(t) or (0,))[0] > floor else None)(
        R.table(meshctl, ADDR, admin)), 10) or {}


# a restart on the state it wrote: above it
p = R.master(rgmaster, ldif, "LAB-RGM", state, tls, log=log)
before = (R.version(incarnation_above(v[0])) or (0,))[0]
R.terminate(p)

# --state deleted: the wall clock is the floor. (Rounded up to the rank
# modulo 64, an incarnation may be up to 63 s ahead of the clock: a master
# that loses its state within a minute of its last activation may start
# below it, and its members' Hellos put it above -- routing_failover.)
shutil.rmtree(state)
clock = int(time.time())
p = R.master(rgmaster, ldif, "LAB-RGM", state, tls, log=log)
after = (R.version(incarnation_above(0)) or (0,))[0]  # 0: the directory's, not published
check(after >= clock and before > 0 and os.path.exists(os.path.join(state, "incarnation")),
      "--state deleted: the master takes %d, not below the wall clock at its start %d, and "
      "makes DIR again (mutation: wall_ms() returning 0)" % (after, clock))
R.terminate(p)

# a persisted incarnation far above the clock: the next is one above it
high = wall0 + 10 ** 6
with open(os.path.join(state, "incarnation"), "w") as f:
    f.write("%d\n" % high)
p = R.master(rgmaster, ldif, "LAB-RGM", state, tls, log=log)
t = incarnation_above(high - 1)
# one above, rounded up to the candidate's rank (0) modulo 64
want = high + 1 + (64 - (high + 1) % 64) % 64
check(R.version(t) and R.version(t)[0] == want,
      "restarted on a state of %d: incarnation %s, the next multiple of 64 above (mutation: "
      "rgm_state_read() leaving *inc at 0)" % (high, R.version(t)))

# SIGHUP: a directory with another server in Lab, then one that does not load
with open(ldif) as f:
    good = f.read()
with open(ldif, "a") as f:
    f.write("\ndn: cn=N3,cn=Lab,o=Lab\nobjectClass: mmServer\ncn: N3\nmmFqdn: n3.lab.test\n"
            "mmRoutingAddress: 127.0.50.3:6911\n\ndn: cn=SMTP,cn=N3,cn=Lab,o=Lab\n"
            "objectClass: mmVirtualServer\ncn: SMTP\nmmBind: 127.0.50.3:2525\n"
            "mmFqdn: n3.lab.test\n")
v0 = R.version(t) or (0, 0, 0, 0)
p.send_signal(1)
t = wait_for(lambda: (lambda t: t if len((R.group(t) or {}).get("servers", [])) == 3 else None)(
    R.table(meshctl, ADDR, admin)), 10) or {}
v1 = R.version(t) or (0, 0, 0, 0)
check([x["name"] for x in (R.group(t) or {}).get("servers", [])] == ["N1", "N2", "N3"] and
      v1[1] == v0[1] + 1,
      "SIGHUP: N3 is in group Lab, major %s -> %s (mutation: hup_cb() not calling "
      "mm_master_directory)" % (v0[1], v1[1]))
# another group's entry follows the directory at every SIGHUP, though
# every directory copy has one version (mutation: master.c
# mm_master_directory without replace_directory_copy -- equal versions go
# by digest and about half of these edits are lost)
with open(ldif) as f:
    with_n3 = f.read()
fqdns = []
for k in range(6):
    with open(ldif, "w") as f:
        f.write(with_n3.replace("mmFqdn: f1.lab.test", "mmFqdn: f1-%d.lab.test" % k))
    p.send_signal(1)
    want = "f1-%d.lab.test" % k
    got = wait_for(lambda: (lambda g: g and g["servers"][0]["fqdn"] == want)(
        R.group(R.table(meshctl, ADDR, admin), "Far")), 5)
    fqdns.append(bool(got))
check(all(fqdns), "SIGHUP: group Far follows each of 6 edits of the directory (%s)" % fqdns)
with open(ldif, "w") as f:
    f.write(with_n3)
p.send_signal(1)
# taken before the next SIGHUP (two close together may arrive as one)
wait_for(lambda: (lambda g: g and g["servers"][0]["fqdn"] == "f1.lab.test")(
    R.group(R.table(meshctl, ADDR, admin), "Far")), 5)
with open(ldif, "w") as f:
    f.write(good.replace("mmPriority: 100", "mmPriority: lots"))
p.send_signal(1)
check(wait_for(lambda: R.log_has(log, "reload: the directory does not load"), 10) and
      R.log_has(log, "reload: " + ldif + ":"),
      "SIGHUP with a bad directory: refused, each problem logged as FILE:LINE (mutation: "
      "load_directory() printing nothing on reload)")
t = R.table(meshctl, ADDR, admin) or {}
check(p.poll() is None and R.version(t) == v1 and t.get("organization") == "Lab" and
      len((R.group(t) or {}).get("servers", [])) == 3,
      "... and the directory in use stays, organization and all, the master serving "
      "(mutation: hup_cb() taking the organization's name before the load succeeded)")
with open(ldif, "w") as f:
    f.write(good)
R.terminate(p)
mb.close()

# the plain path: insecure=1, raw frames from Python
ldif2 = R.org(mkorg, os.path.join(W, "plain.ldif"), "127.0.50.5")
p = R.master(rgmaster, ldif2, "LAB-RGM", os.path.join(W, "plain-state"))
c = R.Raw691("127.0.50.5:6910")
c.send(R.hello_frame("ops", R.ROLE_ADMIN))
h = c.frame()
check(h and h[0] == "hello" and h[1].get(1) == [b"LAB-RGM"] and h[1].get(7) == [R.ROLE_MASTER],
      "insecure: an admin's Hello over plain TCP gets the master's Hello (%r) (mutation: "
      "net_opened() not calling mm_master_conn_open without a certificate)" % (h,))
c.send(R.ping_frame(4242))
pong = c.frame()
check(pong and pong[0] == "pong" and pong[1].get(1) == [4242],
      "a Ping gets a Pong of the same nonce (%r)" % (pong,))
c.send(R.query_frame("table", "json"))
rep = wait_for(lambda: c.frame(), 10)
doc = json.loads(rep[1][2][0]) if rep and rep[0] == "reply" and 2 in rep[1] else {}
check(rep and rep[1].get(1, [0]) == [0] and doc.get("server") == "LAB-RGM",
      "Query table json: Reply status 0 with the table (mutation: send_frame() dropping the "
      "frame's header)")
c.send(R.query_frame("table"))
rep = c.frame()
check(rep and rep[0] == "reply" and rep[1].get(1) == [64] and
      b"its output format" in rep[1].get(2, [b""])[0],
      "Query table without its format: 64 (%r)" % (rep,))
c.close()
R.terminate(p)
R.done()
