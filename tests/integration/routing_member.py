#!/usr/bin/env python3
"""The member machine wired into meshnode, against a stand-in for the
active master (a few lines of Python speaking 691 in plain TCP, until the
rgmaster daemon lands): N1 dials its master candidate from its own routing
address, says Hello, sends its snapshot; the master's pushes change what N1
routes with and SPOOL/table; the detector's reports go to the master at
once; SIGTERM tells the master "server down"; a restart says Hello with the
version it saved. Each check names the mutation of the code it was seen to
catch.

usage: routing_member.py MESHNODE MESHCTL MKORG SCHEMA
"""
import os
import queue
import smtplib
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nodelib  # noqa: E402
import routing_lib as rl  # noqa: E402
from nodelib import check, done, files, node, sink, wait_for, workdir  # noqa: E402

meshnode, meshctl = sys.argv[1:3]
W = workdir("rt-member")
N1 = ("127.0.64.1", 2525)
MASTER = ("127.0.64.9", 6910)
PRIMARY, BACKUP = "127.0.64.3:25250", "127.0.64.4:25250"
ldif = os.path.join(W, "lab.ldif")
rl.org(ldif, "%s:%d" % N1, PRIMARY, BACKUP, master="%s:%d" % MASTER)
s1 = W + "/n1"
table = s1 + "/table"


class Master(threading.Thread):
    """Accepts N1's connections one after the other; every frame N1 sends
    goes to self.frames as (kind, fields); Pings are answered, and after
    its Hello a Ping goes out every 200 ms so that N1 keeps the
    connection."""

    def __init__(self):
        super().__init__(daemon=True)
        self.ls = socket.create_server(MASTER)
        self.frames = queue.Queue()
        self.conn = None
        self.peer = None
        self.lock = threading.Lock()
        self.seq = 0

    def send(self, frame):
        with self.lock:
            if self.conn is None:
                return
            self.seq += 1
            body = rl.encode([[1, self.seq]] + frame)
            try:
                self.conn.sendall(struct.pack(">I", len(body)) + body)
            except OSError:
                pass

    def pinger(self, conn):
        while self.conn is conn:
            self.send([[9, [[1, 7]]]])
            time.sleep(0.2)

    def run(self):
        while True:
            conn, peer = self.ls.accept()
            self.conn, self.peer = conn, peer
            self.frames.put(("connected", peer))
            buf = b""
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
                    n = struct.unpack(">I", buf[:4])[0]
                    f = rl.decode(buf[4:4 + n])
                    buf = buf[4 + n:]
                    if rl.get(f, 9) is not None:  # Ping
                        self.send([[10, [[1, rl.get(rl.decode(rl.get(f, 9)), 1, 0)]]]])
                        continue
                    for k, name in ((2, "hello"), (3, "report"), (5, "probe"), (10, "pong")):
                        if rl.get(f, k) is not None:
                            self.frames.put((name, rl.decode(rl.get(f, k))))
            with self.lock:
                self.conn = None
            conn.close()
            self.frames.put(("closed", True))

    def next(self, kind, timeout=15):
        """The next frame of that kind (others are skipped)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                k, v = self.frames.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                return None
            if k == kind:
                return v
        return None

    def hello_active(self):
        self.send([[2, [[1, "LAB-RGM"], [2, "Lab"], [5, 1], [6, 0], [7, rl.ROLE_MASTER],
                        [9, 1]]]])
        threading.Thread(target=self.pinger, args=(self.conn,), daemon=True).start()

    def push(self, entry, full):
        self.send([[4, [[1, 1 if full else 0], [2, rl.encode(entry)]]]])


def changes(report):
    """A StateReport's changes as (kind, name, server, vs, down)."""
    out = []
    for c in rl.get_all(report, 2):
        f = rl.decode(c)
        out.append((rl.get(f, 1, 0), rl.get(f, 2, b"").decode(), rl.get(f, 3, b"").decode(),
                    rl.get(f, 4, b"").decode(), bool(rl.get(f, 5, 0))))
    return out


count = [0]


def goes_to(where):
    count[0] += 1
    subject = "m%d" % count[0]
    c = smtplib.SMTP(*N1)
    c.sendmail("s@example.org", ["far@example.net"], "Subject: %s\r\n\r\nx\r\n" % subject)
    c.quit()

    def where_now():
        for d in ("primary", "backup"):
            for f in files(W + "/" + d):
                if ("Subject: %s\n" % subject) in open(f, errors="replace").read():
                    return d
        return None
    return wait_for(where_now, 15) == where


def entry(inc, minor, primary_down):
    """The group's entry as the node saved it from the directory, as a
    master would issue it."""
    e = rl.table_groups(open(table, "rb").read())["Lab"]
    rl.set_version(e, inc, 1, minor, 0)
    rl.put(e, 2, "LAB-RGM")
    rl.mark_connector(e, "Primary", primary_down)
    return e


m = Master()
m.start()
p_sink = sink(PRIMARY, W + "/primary")
sink(BACKUP, W + "/backup")
args = ["--set", "insecure=1", "--set", "glitch_retry_count=1", "--set",
        "glitch_retry_interval_ms=100", "--set", "down_probe_interval_ms=100",
        "--set", "retry_min_ms=200", "--set", "master_retry_min_ms=200",
        "--set", "master_retry_max_ms=500"]
n1 = node(meshnode, ldif, "N1", s1, *args)

peer = m.next("connected")
# (mutation: routing_start without mm_net_bind_source: the dial came from
# 127.0.0.1)
check(peer is not None and peer[0] == "127.0.64.1",
      "N1 dials its master from its own routing address 127.0.64.1 (%s)" % (peer,))
h = m.next("hello")
check(h is not None and rl.get(h, 1) == b"N1" and rl.get(h, 2) == b"Lab" and
      rl.get(h, 7, 0) == rl.ROLE_NODE and rl.get(h, 5) == 1 and
      rl.version([[3, rl.get(h, 8, b"")]]) == (0, 1, 0, 0),
      "its Hello: N1 of Lab, role NODE, major 1, version (0, 1, 0, 0) of the directory")
m.hello_active()
r = m.next("report")
check(r is not None and rl.get(r, 3) == 1 and rl.get(r, 1) == b"N1" and
      changes(r) == [(0, "N1", "", "", False)],
      "after the master's ACTIVE Hello: the snapshot, server N1 up (%s)" %
      (changes(r) if r else None))
check(goes_to("primary"), "mail goes to Primary")

# --- the master's pushes are what N1 routes with ------------------------------
m.push(entry(9, 1, True), full=True)
# (mutation: routing.c save_table() writing nothing: SPOOL/table kept the
# directory's version)
check(wait_for(lambda: rl.version(rl.table_groups(open(table, "rb").read())["Lab"]) ==
               (9, 1, 1, 0)), "a full push of (9, 1, 1, 0) is saved to SPOOL/table")
check(goes_to("backup"), "it marks Primary down: mail goes to Backup")
m.push(entry(9, 2, False), full=False)
check(wait_for(lambda: rl.version(rl.table_groups(open(table, "rb").read())["Lab"]) ==
               (9, 1, 2, 0)), "a delta of (9, 1, 2, 0) is saved")
check(goes_to("primary"), "Primary up again in it: mail goes to Primary")

# --- the detector's report goes to the master at once ----------------------------
p_sink.kill()
p_sink.wait()
nodelib.procs.remove(p_sink)
check(goes_to("backup"), "Primary's smart host stops: N1 routes around it at once")
r = m.next("report")
# (mutation: member.c mm_member_report not sending while connected: the
# master heard nothing)
check(r is not None and rl.get(r, 3, 0) == 0 and
      changes(r) == [(2, "Primary", "N1", "SMTP", True)],
      "the master gets a StateReport: bridgehead N1/SMTP on Primary down (%s)" %
      (changes(r) if r else None))
check('reported down (to master LAB-RGM)' in open(W + "/N1.log").read(),
      "the log says the master was told")

# --- SIGTERM: "server down" to the master ------------------------------------------
n1.terminate()
r = m.next("report")
# (mutation: routing_stop without mm_member_stop: the connection just closed)
check(r is not None and changes(r) == [(0, "N1", "", "", True)],
      "at SIGTERM the master hears server N1 down (%s)" % (changes(r) if r else None))
# (mutation: meshnode.c stop_cb doing nothing -- no report, and the
# connection stays open)
check(m.next("closed") is not None, "then N1 closes the connection")
check(n1.wait(20) == 0, "N1 exits 0")

# --- a restart: Hello with the saved version ---------------------------------------
n1 = node(meshnode, ldif, "N1", s1, *args)
m.next("connected")
h = m.next("hello")
check(h is not None and rl.version([[3, rl.get(h, 8, b"")]]) == (9, 1, 2, 0) and
      rl.get(h, 12, 0) == 9,
      "after a restart N1's Hello holds the saved (9, 1, 2, 0), incarnation seen 9")
done()
