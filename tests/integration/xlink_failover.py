#!/usr/bin/env python3
"""Bridgehead failover between two routing groups (DESIGN §5.2, 4.5), with
real processes over mutual TLS.

Group A: A1 and A2 are the local bridgeheads of connector A-B (and the
remote ones of B-A), A3 sends. Group B: B1 and B2 the remote bridgeheads of
A-B, B3 holds the mailbox. Mail A3 -> B3 spreads over A1/A2 and B1/B2 by
rendezvous hashing (of each node's queue id).

1. Both remote bridgeheads carry a share, and both local ones.
2. kill -9 B1 while A3 sends: every message first routed to B1 and not yet
   handed over is rerouted to B2; no message routed to B2 moves (only B1's
   share: shown per queue id from A1's and A2's tracking logs); B1 shows
   down in the tables of both groups; after B1 is back, every sent message
   is in the mailbox (its spool held what it had taken), duplicates at
   most the deliveries to B1 the kill cut (counted: DEFERRED from B1's
   queue), and new mail spreads over B1 again.
3. The same for a local bridgehead: kill -9 A1 while A3 sends.

usage: xlink_failover.py MESHNODE MESHCTL RGMASTER
"""
import email
import email.utils
import os
import re
import smtplib
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import meshlib as M  # noqa: E402
from nodelib import check, done, maildir, wait_for, workdir  # noqa: E402

meshnode, meshctl, rgmaster = sys.argv[1:4]
W = workdir("xlink-failover")
NA, NB = "127.0.65.", "127.0.66."
groups = [{"name": "A", "masters": [("A-RGM", NA + "250")],
           "servers": [("A1", NA + "1"), ("A2", NA + "2"), ("A3", NA + "3")]},
          {"name": "B", "masters": [("B-RGM", NB + "250")],
           "servers": [("B1", NB + "1"), ("B2", NB + "2"), ("B3", NB + "3")]}]
conns = [("A-B", "A", 1, ["A1", "A2"], "B", ["B1", "B2"]),
         ("B-A", "B", 1, ["B1", "B2"], "A", ["A1", "A2"])]
RCPT = "bea@" + M.DOMAIN
mesh = M.Mesh.of(W, (meshnode, meshctl, rgmaster), groups, conns, recipients=[("bea", "B3")])
# a failed delivery counts at once (glitch_retry_count=1 in FASTNODE)
CONCURRENCY = 4  # sessions to one next hop (dest_concurrency)
EXTRA = ["--set", "reply_timeout_s=30", "--set", "dest_concurrency=%d" % CONCURRENCY]
mesh.start_all(*EXTRA)
check(wait_for(mesh.converged, 90, 0.2) is not None,
      "two groups, six servers: one digest of signed entries (%s)" % mesh.digests())

sent = []  # Message-IDs answered 250
sent_lock = threading.Lock()


def send(n, tag):
    """n messages from A3, one transaction each, on one session per 10."""
    k = 0
    while k < n:
        try:
            s = smtplib.SMTP(NA + "3", M.SMTP_PORT, timeout=60)
            for _ in range(min(10, n - k)):
                mid = "<%s.%d@mesh.test>" % (tag, k)
                s.sendmail("a3@" + M.DOMAIN, [RCPT], "Message-ID: %s\r\nSubject: %s %d\r\n\r\n"
                           "%s\r\n" % (mid, tag, k, tag))
                with sent_lock:
                    sent.append(mid)
                k += 1
            s.quit()
        except (smtplib.SMTPException, OSError):
            time.sleep(0.2)  # refused: that one is not sent; go on


BY = re.compile(r"by (\S+) \(mailmesh\) with \S+ id ([0-9a-f]+).*;\s*(.+)$")


def chains():
    """Message-ID -> one chain per copy: [(server, its queue id, the time
    it took the message)], the last hop first ("by b1.mesh.test (mailmesh)
    ... id X ...; DATE": server B1)."""
    got = {}
    for f in maildir(mesh.spool("B3"), RCPT):
        with open(f, "rb") as h:
            m = email.message_from_bytes(h.read())
        by = [BY.search(" ".join(r.split())) for r in m.get_all("Received", [])]
        got.setdefault(m["Message-ID"], []).append(
            [(x.group(1).split(".")[0].upper(), x.group(2),
              email.utils.parsedate_to_datetime(x.group(3)).timestamp()) for x in by if x])
    return got


def mailbox():
    """Message-ID -> [the servers it passed], one list per copy."""
    return {mid: [[x[0] for x in c] for c in cs] for mid, cs in chains().items()}


def recovered(server):
    return set(re.findall(r" RECOVERED ([0-9a-f]+) ", M.tracking(mesh.spool(server))))


def all_in(tag, n):
    box = mailbox()
    return all("<%s.%d@mesh.test>" % (tag, k) in box for k in range(n))


# --- 1. spreading ---------------------------------------------------------------
send(40, "spread")
check(wait_for(lambda: all_in("spread", 40), 60), "40 messages A3 -> B3 delivered")
box = mailbox()
byb = {b: sum(1 for mid, cs in box.items() if "spread" in mid and b in cs[0]) for b in ("B1", "B2")}
bya = {a: sum(1 for mid, cs in box.items() if "spread" in mid and a in cs[0]) for a in ("A1", "A2")}
# (mutation: linkstate/route.c answer() taking the first candidate always --
# one bridgehead carries everything)
check(all(byb.values()) and all(bya.values()),
      "spread by rendezvous over both remote bridgeheads %s and both local ones %s" % (byb, bya))


# --- tracking logs --------------------------------------------------------------
EV = re.compile(r"^\S+ (ROUTED|REROUTED|DEFERRED|DELIVERED) (\S+) to=<%s>(.*)$" % re.escape(RCPT))


def events(server):
    """queue id -> [(event, fields)] for RCPT, in order."""
    out = {}
    for line in M.tracking(mesh.spool(server)).splitlines():
        m = EV.match(line)
        if m:
            f = dict(re.findall(r' (\w+)=("(?:[^"\\]|\\.)*"|\S+)', m.group(3)))
            out.setdefault(m.group(2), []).append((m.group(1), f))
    return out


def hop(f, key="next_hop"):
    return f.get(key, "").strip('"')


kills = []  # (victim, carriers, when, the queue ids it recovered)


def duplicates():
    """Every second copy in the mailbox, by where the copies part: the last
    node both passed with one queue id sent it twice. A kill explains it
    when that node is a carrier (its delivery to the victim was cut: the
    victim took it just before the kill) or the victim (its delivery onward
    was cut: the next hop took it just before the kill, and the victim
    recovered it). Times: the Received headers', to the second."""
    dups = cut_to = cut_from = unexplained = 0
    for copies in chains().values():
        first = list(reversed(copies[0]))  # from A3 on
        for c in copies[1:]:
            dups += 1
            c = list(reversed(c))
            k = 0
            while k < min(len(first), len(c)) and first[k][:2] == c[k][:2]:
                k += 1
            node, qid = first[k - 1][:2] if k else ("?", "")
            nexts = [x[k] for x in (first, c) if k < len(x)]  # where each went
            why = None
            for victim, carriers, when, rec, _ in kills:
                near = lambda t: when - 2 <= t <= when + 1  # noqa: E731
                if node in carriers and any(n == victim and near(t) for n, _, t in nexts):
                    why = "to"
                elif node == victim and qid in rec and nexts and near(min(t for _, _, t in nexts)):
                    why = "from"
            cut_to += why == "to"
            cut_from += why == "from"
            unexplained += why is None
    return dups, cut_to, cut_from, unexplained


def failover(victim, survivor, carriers, tag, addr_of, onward):
    """kill -9 victim while A3 sends 120 messages; carriers: the servers whose
    tracking logs show the choice between victim and survivor."""
    va, sa = addr_of(victim), addr_of(survivor)
    before = {c: set(events(c)) for c in carriers}
    t = threading.Thread(target=send, args=(120, tag))
    t.start()
    # kill once the victim has taken a share of this run
    wait_for(lambda: sum(1 for c in carriers for ev in events(c).values()
                         if any(e == "DELIVERED" and hop(f) == va for e, f in ev)) >= 10
             or not t.is_alive(), 60, 0.05)
    time.sleep(0.05)
    killed_at = time.time()
    mesh.kill(victim)
    t.join(300)
    n = len([m for m in sent if tag in m])
    check(n >= 100, "%s: %d of 120 messages accepted by A3 while %s died" % (tag, n, victim))
    # the table shows it down in both groups
    for where in ("A3", "B3"):
        check(wait_for(lambda: M.server_state(mesh.table(where), victim) == "down", 60, 0.1),
              "%s: %s down in %s's table" % (tag, victim, where))
    # only the victim's share moved: per queue id at each carrier
    time.sleep(1.2)  # tracking logs flush once a second
    moved_from, stayed, to_victim_after = [], 0, 0
    for c in carriers:
        for qid, ev in events(c).items():
            if qid in before[c]:
                continue
            first = next((f for e, f in ev if e == "ROUTED"), None)
            if first is None:
                continue
            for e, f in ev:
                if e == "REROUTED":
                    moved_from.append(hop(f, "old_next_hop"))
            if hop(first) == sa:
                stayed += 1
    # (how many moved depends on what waited at the kill; none of them may
    # have been the survivor's)
    check(not set(moved_from) - {va},
          "%s: only %s's share was rerouted (%d moves, from %s); %d first routed to %s stayed"
          % (tag, victim, len(moved_from), sorted(set(moved_from)), stayed, survivor))
    # the victim back: what its spool held is delivered, nothing lost
    mesh.start_node(victim, *EXTRA)
    check(wait_for(lambda: M.server_state(mesh.table("A3"), victim) == "up", 60, 0.1),
          "%s: %s up again in A3's table" % (tag, victim))
    ids = [m for m in sent if tag in m]
    check(wait_for(lambda: all(m in mailbox() for m in ids), 120),
          "%s: every one of the %d accepted messages is in the mailbox (lost: %d)"
          % (tag, len(ids), len([m for m in ids if m not in mailbox()])))
    # Duplicates come only from deliveries the kill cut between the final
    # dot and the reply: (a) to the victim -- it had the message on disk,
    # and the carrier sent its own copy again by the survivor: one queue id
    # of a carrier in two chains; (b) from the victim -- the next hop had
    # it, and the victim, restarted, recovered it as still to deliver.
    kills.append((victim, carriers, killed_at, recovered(victim), onward))
    dups, cut_to, cut_from, unexplained = duplicates()
    # (mutation: node/spool.c recovery ignoring the records of deliveries --
    # the victim sends again all it delivered before the kill: dozens)
    # and a kill cuts no more deliveries than there are sessions: at most
    # CONCURRENCY from each carrier to the victim, and from it to each of
    # its next hops (onward)
    most_to = sum(CONCURRENCY * len(k[1]) for k in kills)
    most_from = sum(CONCURRENCY * k[4] for k in kills)
    check(unexplained == 0 and cut_to <= most_to and cut_from <= most_from,
          "%s: %d duplicates in all, each a delivery a kill cut between its final dot "
          "and the reply (%d to the victim, %d from it; %d not)"
          % (tag, dups, cut_to, cut_from, unexplained))
    # its share comes back
    send(40, tag + "-back")
    check(wait_for(lambda: all_in(tag + "-back", 40), 60), "%s: 40 more delivered" % tag)
    box = mailbox()
    back = sum(1 for mid, cs in box.items() if (tag + "-back") in mid and victim in cs[0])
    check(back > 0, "%s: %s carries its share again (%d of 40)" % (tag, victim, back))


def smtp_of(server):
    return "%s:%d" % (mesh.servers[server].split(":")[0], M.SMTP_PORT)


# --- 2. a remote bridgehead -------------------------------------------------------
failover("B1", "B2", ["A1", "A2"], "remote", smtp_of, 1)  # B1 delivers to B3
# --- 3. a local bridgehead ----------------------------------------------------------
failover("A1", "A2", ["A3"], "local", smtp_of, 2)  # A1 to B1 and B2
for n in list(mesh.procs):
    rc = mesh.stop(n)
    check(rc == 0, "%s exits 0 on SIGTERM (got %s)" % (n, rc))
done()
