#!/usr/bin/env python3
"""Recovery never deletes what it could not read. Spools crafted byte by
byte (tests/support/spoolfmt.py), each message for alice (local delivery):

  - a read error (EIO, injected by the power-cut harness) on a segment
    fails the start with a sysexits code and a message naming the file, and
    leaves the file as it was; the next start delivers it all;
  - a segment that cannot be opened fails the start the same way;
  - a bad record (bad CRC, bad magic, a length past the end, a message that
    does not parse) in a segment that is not the last one: the segment is
    kept in queue/quarantine/ byte for byte, the log names it and the byte
    offset, the records before the bad one are delivered, and the quarantine
    copy stays after the segment is done with;
  - a torn tail of the last segment is cut off (never acknowledged), logged,
    and nothing is quarantined; a bad record in the last segment with a
    readable record after it is damage, not a tail: quarantined.

usage: meshnode_spool_recovery.py MESHNODE MESHCTL MKORG SCHEMA

Proven: before this recovery (mmap, a failed mapping read as an empty
segment, the rest of a segment after a bad record dropped and the segment
unlinked once its first records were delivered) the read-error case starts
and loses its messages, and every quarantine check fails.
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcnode import Node, idle, lib_for, powercut, seqs  # noqa: E402
from nodelib import check, done, files, maildir, wait_for, workdir  # noqa: E402
import spoolfmt  # noqa: E402

meshnode, meshctl, mkorg = sys.argv[1:4]
W = workdir("spoolrec")
N1 = ("127.0.42.1", 2525)
ldif = os.path.join(W, "lab.ldif")
subprocess.run([sys.executable, mkorg, ldif, "--bind", "%s:%d" % N1], check=True)
lib = lib_for(meshnode)
ALICE = ["alice@example.test"]
nseq = [0]


def m(n=None):
    """a good message record for alice, X-Seq n"""
    nseq[0] += 1
    n = n or nseq[0]
    return spoolfmt.msg((1000 + n) << 16, ALICE, "Subject: %d\r\nX-Seq: %d\r\n\r\nbody\r\n" % (n, n))


def spool_with(name, segs):
    """a spool whose queue/ holds segs (bytes) as 00000001.seg, ..."""
    root = os.path.join(W, name)
    spool = os.path.join(root, "n1")
    os.makedirs(os.path.join(spool, "queue"))
    for i, data in enumerate(segs, 1):
        with open(os.path.join(spool, "queue", "%08x.seg" % i), "wb") as f:
            f.write(data)
    return root, spool


def node(root, spool, **kw):
    return Node(meshnode, ldif, "N1", spool, powercut.Harness(root, lib, **kw), W)


def delivered(spool):
    return seqs(maildir(spool, "alice@example.test"))


def settle(spool, want):
    wait_for(lambda: set(delivered(spool)) >= want and idle(meshctl, spool), 20)
    return set(delivered(spool))


# --- a read error, and a segment that cannot be opened --------------------------
first = [m(1), m(2), m(3)]
root, spool = spool_with("eio", [b"".join(first), m(4)])
seg1 = os.path.join(spool, "queue", "00000001.seg")
before = open(seg1, "rb").read()
n = node(root, spool, fail_read="00000001.seg")
rc, err = n.run()
check(rc in (73, 74), "a read error fails the start with a sysexits code (got %s)" % rc)
check("cannot read segment %s" % seg1 in err and "Input/output error" in err,
      "and says which segment and why: %s" % err.strip().splitlines()[-1:])
check(os.path.exists(seg1) and open(seg1, "rb").read() == before,
      "the segment it could not read is left as it was")
n = node(root, spool)
n.start()
check(settle(spool, {1, 2, 3, 4}) >= {1, 2, 3, 4},
      "the next start reads it and delivers everything (%s)" % sorted(delivered(spool)))
n.stop()

root, spool = spool_with("eisdir", [m(11)])
os.mkdir(os.path.join(spool, "queue", "00000002.seg"))
rc, err = node(root, spool).run()
check(rc in (73, 74) and "open segment %s/queue/00000002.seg" % spool in err,
      "a segment that cannot be opened fails the start the same way (rc %s)" % rc)
check(os.path.exists(os.path.join(spool, "queue", "00000001.seg")),
      "and the other segments stay")

# --- bad records in segments that are not the last ----------------------------------
good = [m(21), m(22)]
bad_crc = spoolfmt.record(spoolfmt.MSG, spoolfmt.msg_payload(123 << 16, ALICE, "X-Seq: 23\r\n"),
                          crc=0xDEADBEEF)
bad_magic = b"JUNK" + m(33)[4:]
past_end = spoolfmt.record(spoolfmt.MSG, b"")[:8] + b"\xff\xff\xff\x00" + b"\0" * 4
no_parse = spoolfmt.record(spoolfmt.MSG, b"\x01\x02\x03 not a message")
cases = [("a bad CRC", good + [bad_crc, m(24)]),
         ("a bad magic number", [m(31), m(32), bad_magic, m(34)]),
         ("a length past the end of the file", [m(41), past_end, m(43)]),
         ("a message record that does not parse", [m(51), no_parse, m(53)])]
segs = [b"".join(parts) for _, parts in cases] + [m(61)]
root, spool = spool_with("bad", segs)
n = node(root, spool)
n.start()
got = settle(spool, {21, 22, 31, 32, 41, 51, 61})
n.stop()
log = n.log()
for i, (why, parts) in enumerate(cases, 1):
    name = "%08x.seg" % i
    off = sum(len(p) for p in parts[:[k for k, p in enumerate(parts)
                                      if p in (bad_crc, bad_magic, past_end, no_parse)][0]])
    q = os.path.join(spool, "queue", "quarantine", name)
    check(os.path.exists(q) and open(q, "rb").read() == segs[i - 1],
          "%s in segment %d (not the last): kept byte for byte in quarantine/" % (why, i))
    check(re.search(r"segment %s: %s at byte %d; the segment is kept as %s" %
                    (re.escape(os.path.join(spool, "queue", name)), why, off, re.escape(q)), log)
          is not None, "the log names the segment, the reason and byte %d" % off)
check(got >= {21, 22, 31, 32, 41, 51, 61},
      "the records before each bad one are delivered (%s)" % sorted(got))
check(not got & {24, 34, 43, 53}, "nothing after a bad record is made up")
n.start()
wait_for(lambda: not os.path.exists(os.path.join(spool, "queue", "00000001.seg")), 10)
check(len(files(os.path.join(spool, "queue", "quarantine"))) == 4,
      "the quarantine copies stay after their segments are done with")
n.stop()

# --- the last segment: a torn tail, and damage --------------------------------------
torn = m(71) + m(72)
tail = m(73)
root, spool = spool_with("torn", [torn + tail[:len(tail) // 2]])
n = node(root, spool)
n.start()
got = settle(spool, {71, 72})
n.stop()
check(got == {71, 72}, "torn tail of the last segment: the whole records are delivered")
check(not os.path.exists(os.path.join(spool, "queue", "quarantine")),
      "a torn tail is not quarantined")
check(re.search(r"00000001.seg: .* at byte %d, the end of the log: %d bytes never acknowledged "
                r"cut off" % (len(torn), len(tail) // 2), n.log()) is not None,
      "the cut is logged with its offset and size")

root, spool = spool_with("lastbad", [m(81) + bad_crc + m(83)])
n = node(root, spool)
n.start()
got = settle(spool, {81})
n.stop()
check(got == {81} and os.path.exists(os.path.join(spool, "queue", "quarantine", "00000001.seg")),
      "a bad record with a readable one after it in the last segment is quarantined")
shutil.rmtree(os.path.join(W, "eio") + ".powercut", ignore_errors=True)
done()
