#!/usr/bin/env python3
"""The power-cut harness, Python side: the environment that puts a program
under libpowercut.so, and the undo step that turns the files under the root
into what a disk with a volatile write cache would hold after a power cut
at the instant the program died (docs/durability.md).

    import powercut
    h = powercut.Harness(root, lib)            # root: the directory to model
    p = subprocess.Popen(cmd, env=h.env())     # the program under the harness
    p.kill(); p.wait()
    stats = h.cut()                            # the undo step

    python3 powercut.py undo STATE_DIR         # the same from a shell

The rules (they are the ones libpowercut.so journals for):
  - a change of a file's bytes or size stays only if an fsync/fdatasync of
    the same inode (through any descriptor) began after the change returned
    and itself returned 0; sync()/syncfs() count for every inode;
  - a directory change (create, mkdir, unlink, rmdir, link, symlink) stays
    only if an fsync of its directory began after it returned; a rename
    stays only if an fsync of its destination directory did;
  - the changes that do not stay are undone newest first; an undone mkdir
    takes everything under it along.
"""
import collections
import os
import shutil
import struct
import subprocess
import sys

MAGIC = 0x314A4350
HDR = struct.Struct("<10Qq13Q")
FIELDS = ("magic size type pid id dev ino off len oldsize rc pdev pino qdev qino rdev rino "
          "op mode len1 len2 dlen flags rmode").split()
DATA, PRE, DONE, SYNC, NS = 1, 2, 3, 4, 5
WRITE, TRUNC, FALLOC = 1, 2, 3
CREATE, MKDIR, UNLINK, RMDIR, RENAME, LINK, SYMLINK = 1, 2, 3, 4, 5, 6, 7
NS_NAMES = {CREATE: "create", MKDIR: "mkdir", UNLINK: "unlink", RMDIR: "rmdir",
            RENAME: "rename", LINK: "link", SYMLINK: "symlink"}


class Rec:
    __slots__ = tuple(FIELDS) + ("seq", "p1", "p2", "data")

    def __init__(self, seq, vals, p1, p2, data):
        for k, v in zip(FIELDS, vals):
            setattr(self, k, v)
        self.seq, self.p1, self.p2, self.data = seq, p1, p2, data


def read_journal(path):
    """Every whole record in order; a torn last record (the writer died in
    the middle of it) ends the journal."""
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except FileNotFoundError:
        return []
    recs, pos = [], 0
    while pos + HDR.size <= len(buf):
        vals = HDR.unpack_from(buf, pos)
        magic, size = vals[0], vals[1]
        len1, len2, dlen = vals[19], vals[20], vals[21]
        if magic != MAGIC or size != HDR.size + len1 + len2 + dlen or pos + size > len(buf):
            break
        at = pos + HDR.size
        p1 = os.fsdecode(buf[at:at + len1])
        p2 = os.fsdecode(buf[at + len1:at + len1 + len2])
        data = buf[at + len1 + len2:pos + size]
        recs.append(Rec(len(recs), vals, p1, p2, data))
        pos += size
    return recs


class Plan:
    """What the journal says: every change, whether it is covered, and the
    order to undo the others in."""

    def __init__(self, recs):
        self.changes = []                     # DATA and NS begin records, in order
        self.done = {}                        # id -> DONE record
        self.pre = collections.defaultdict(list)
        syncs = []
        for r in recs:
            if r.type in (DATA, NS):
                self.changes.append(r)
            elif r.type == PRE:
                self.pre[r.id].append(r)
            elif r.type == DONE:
                self.done[r.id] = r
            elif r.type == SYNC:
                syncs.append(r)
        # the latest successful sync to begin, per inode and for everything
        self.synced = {}
        self.synced_all = -1
        for s in syncs:
            d = self.done.get(s.id)
            if d is None or d.rc != 0:
                continue                      # died during it, or it failed
            if s.flags & 1:
                self.synced_all = max(self.synced_all, s.seq)
            else:
                k = (s.dev, s.ino)
                self.synced[k] = max(self.synced.get(k, -1), s.seq)

    def covered(self, r):
        d = self.done.get(r.id)
        if d is None:
            return False                      # never returned: nothing began after it
        if d.rc < 0:
            return True                       # it failed: nothing to undo
        if r.type == DATA:
            key = (r.dev, r.ino)
        elif r.op in (RENAME, LINK):
            key = (r.qdev, r.qino)            # the destination's directory
        else:
            key = (r.pdev, r.pino)
        return d.seq < max(self.synced.get(key, -1), self.synced_all)

    def uncovered(self):
        return [r for r in self.changes if not self.covered(r)]


class Undo:
    def __init__(self, state, plan, log):
        self.stash = os.path.join(state, "stash")
        self.plan = plan
        self.log = log
        self.stats = collections.Counter()

    def stashed(self, dev, ino):
        p = os.path.join(self.stash, "%d-%d" % (dev, ino))
        return p if os.path.lexists(p) else None

    def same(self, path, dev, ino):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        return (st.st_dev, st.st_ino) == (dev, ino)

    def data(self, r):
        path = self.stashed(r.dev, r.ino)
        if path is None:
            self.stats["unreachable"] += 1
            self.log("powercut: no stash for inode %d (%s): its bytes stay" % (r.ino, r.p1))
            return
        fd = os.open(path, os.O_WRONLY)
        try:
            size = os.fstat(fd).st_size
            if size > r.oldsize:
                os.ftruncate(fd, r.oldsize)   # what it appended goes
            elif size < r.oldsize:
                os.ftruncate(fd, r.oldsize)   # what it cut off comes back (bytes below)
            for p in self.plan.pre[r.id]:
                os.pwrite(fd, p.data, p.off)
        finally:
            os.close(fd)
        self.stats["bytes"] += 1

    def ns(self, r):
        d = self.plan.done.get(r.id)
        made = (d.dev, d.ino) if d is not None and d.ino else None
        self.stats[NS_NAMES[r.op]] += 1
        if r.op in (CREATE, SYMLINK, LINK):
            name = r.p2 if r.op == LINK else r.p1
            if r.op == LINK:
                made = (r.dev, r.ino)
            if os.path.lexists(name) and (made is None or self.same(name, *made)):
                os.unlink(name)
        elif r.op == MKDIR:
            if os.path.isdir(r.p1) and not os.path.islink(r.p1) and \
                    (made is None or self.same(r.p1, *made)):
                shutil.rmtree(r.p1)           # the whole subtree goes with it
        elif r.op == UNLINK:
            if d is None and os.path.lexists(r.p1):
                return                        # it never happened
            self.restore(r.p1, r.dev, r.ino, r.mode)
        elif r.op == RMDIR:
            if not os.path.lexists(r.p1):
                os.mkdir(r.p1, r.mode & 0o7777)
        elif r.op == RENAME:
            if not self.same(r.p2, r.dev, r.ino):
                return                        # it never happened (or is gone anyway)
            if os.path.lexists(r.p1):
                # the source's name was taken again by a change that stays
                self.log("powercut: %s cannot go back to %s" % (r.p2, r.p1))
                self.stats["conflict"] += 1
                os.unlink(r.p2) if not os.path.isdir(r.p2) else shutil.rmtree(r.p2)
            else:
                os.rename(r.p2, r.p1)
            if r.rino:
                self.restore(r.p2, r.rdev, r.rino, r.rmode)

    def restore(self, name, dev, ino, mode):
        if os.path.lexists(name):
            return
        if (mode & 0o170000) == 0o040000:
            os.mkdir(name, mode & 0o7777)     # an empty directory: any inode will do
            return
        src = self.stashed(dev, ino)
        if src is None:
            self.stats["unreachable"] += 1
            self.log("powercut: no stash for inode %d: %s stays gone" % (ino, name))
            return
        os.link(src, name, follow_symlinks=False)

    def run(self):
        todo = self.plan.uncovered()
        for r in reversed(todo):              # newest first
            if r.type == DATA:
                self.data(r)
            else:
                self.ns(r)
        self.stats["undone"] = len(todo)
        self.stats["kept"] = len(self.plan.changes) - len(todo)
        return self.stats


def undo(state, log=None):
    """Apply the undo step to what the journal in state describes, then
    start a fresh journal: what is on the files now is the disk."""
    log = log or (lambda m: print(m, file=sys.stderr))
    journal = os.path.join(state, "journal")
    stats = Undo(state, Plan(read_journal(journal)), log).run()
    if os.path.exists(journal):
        os.unlink(journal)
    shutil.rmtree(os.path.join(state, "stash"), ignore_errors=True)
    return stats


def asan_runtime(program):
    """The shared AddressSanitizer runtime a program was linked against,
    when it was (it must come first in LD_PRELOAD); None otherwise."""
    try:
        out = subprocess.run(["ldd", program], capture_output=True, text=True).stdout
    except OSError:
        return None
    for line in out.splitlines():
        if "libclang_rt.asan" in line or "libasan.so" in line:
            parts = line.split("=>")
            if len(parts) == 2:
                return parts[1].split()[0]
    return None


class Harness:
    """One modelled disk: root (the directory the program's files are in),
    lib (libpowercut.so); state (journal and stash) beside the root."""

    def __init__(self, root, lib, state=None, lying=False, ignore=("tracking.log",),
                 fail_read=None):
        self.root = os.path.realpath(root)
        self.lib = os.path.realpath(lib)
        self.state = state or self.root + ".powercut"
        self.lying = lying
        self.ignore = list(ignore)
        self.fail_read = fail_read
        os.makedirs(self.root, exist_ok=True)

    def env(self, program=None, base=None):
        env = dict(os.environ if base is None else base)
        preload = [self.lib]
        rt = asan_runtime(program) if program else None
        if rt:
            preload.insert(0, rt)
        env["LD_PRELOAD"] = ":".join(preload)
        env["POWERCUT_ROOT"] = self.root
        env["POWERCUT_STATE"] = self.state
        env["POWERCUT_IGNORE"] = ":".join(self.ignore)
        env.pop("POWERCUT_LYING", None)
        env.pop("POWERCUT_FAIL_READ", None)
        if self.lying:
            env["POWERCUT_LYING"] = "1"
        if self.fail_read:
            env["POWERCUT_FAIL_READ"] = self.fail_read
        return env

    def cut(self, log=None):
        """The power cut, for a program that has died (SIGKILL and wait, or
        exited): undo what the disk would not have kept."""
        return undo(self.state, log)


def find_lib(near):
    """libpowercut.so of the build a program belongs to (near: a path in
    that build tree), or $POWERCUT_LIB."""
    if os.environ.get("POWERCUT_LIB"):
        return os.environ["POWERCUT_LIB"]
    d = os.path.dirname(os.path.realpath(near))
    while d != "/":
        p = os.path.join(d, "tests", "libpowercut.so")
        if os.path.exists(p):
            return p
        d = os.path.dirname(d)
    raise FileNotFoundError("libpowercut.so near %s (set POWERCUT_LIB)" % near)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "undo":
        print("usage: powercut.py undo STATE_DIR", file=sys.stderr)
        sys.exit(64)
    s = undo(sys.argv[2])
    print(" ".join("%s=%d" % kv for kv in sorted(s.items())))
