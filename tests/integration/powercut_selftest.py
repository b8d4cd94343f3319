#!/usr/bin/env python3
"""The power-cut harness tested on itself: one case per rule. Each case runs
a small Python program under libpowercut.so that changes files in a fresh
root and then SIGKILLs itself, runs the undo step, and checks what is left.
Files the test writes before the program starts are the durable baseline.

usage: powercut_selftest.py LIBPOWERCUT [CASE]...   (no CASE: all of them)

Every case was seen failing once with the rule broken on purpose; the
mutation is named in its comment ("mutation: ...").
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import powercut  # noqa: E402

LIB = os.path.abspath(sys.argv[1])
failures = []

PRELUDE = """
import ctypes, os, signal, sys, threading, time
R = os.environ["POWERCUT_ROOT"]
def p(*a): return os.path.join(R, *a)
def dsync(d):
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)
def put(path, data, sync=False):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, data)
    if sync:
        os.fsync(fd)
    os.close(fd)
def die():
    os.kill(os.getpid(), signal.SIGKILL)
"""


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


class Case:
    def __init__(self, name, lying=False):
        self.base = tempfile.mkdtemp(prefix="mm-powercut-%s." % name)
        self.root = os.path.join(self.base, "root")
        os.mkdir(self.root)
        self.h = powercut.Harness(self.root, LIB, lying=lying)

    def p(self, *a):
        return os.path.join(self.root, *a)

    def file(self, name, data):
        """baseline: written before the harness, durable"""
        with open(self.p(name), "wb") as f:
            f.write(data)

    def run(self, code, cut=True):
        r = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
                           env=self.h.env(), capture_output=True, text=True, timeout=60)
        self.rc, self.err, self.out = r.returncode, r.stderr, r.stdout
        if r.returncode not in (0, -signal.SIGKILL) or "Traceback" in r.stderr:
            if not getattr(self, "expect_abort", False):
                print(r.stderr)
        if cut:
            self.stats = self.h.cut(log=lambda m: None)
        return r

    def read(self, name):
        try:
            with open(self.p(name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def close(self):
        shutil.rmtree(self.base, ignore_errors=True)


# --- bytes -------------------------------------------------------------------

def case_unsynced_write_undone():
    # mutation: Plan.covered() returned True for every DATA record; for the
    # read-back: pwrite() journaled the change but did not make it
    c = Case("unsynced")
    c.file("f", b"aaaa")
    c.file("g", b"")
    c.run("""
        fd = os.open(p("f"), os.O_WRONLY)
        os.pwrite(fd, b"bb", 1)          # overwrites: the old bytes come back
        os.write(fd, b"c")               # at offset 0
        fd2 = os.open(p("g"), os.O_WRONLY | os.O_APPEND)
        os.writev(fd2, [b"hello ", b"world"])
        import mmap                      # the program reads back what it wrote
        r = os.open(p("f"), os.O_RDONLY)
        m = mmap.mmap(r, 4, mmap.MAP_SHARED, mmap.PROT_READ)
        print("read back", os.pread(r, 4, 0), m[:4], flush=True)
        die()
    """)
    check("read back b'cbba' b'cbba'" in c.out,
          "while it runs, the program reads back what it wrote (pread and mmap): %s" % c.out.strip())
    check(c.read("f") == b"aaaa", "unsynced pwrite/write over old bytes undone: %r" % c.read("f"))
    check(c.read("g") == b"", "unsynced append undone (size back to 0): %r" % c.read("g"))
    c.close()


def case_synced_write_kept():
    # mutation: Plan.covered() ignored every sync (returned False for DATA)
    c = Case("synced")
    c.file("f", b"")
    c.run("""
        fd = os.open(p("f"), os.O_WRONLY)
        os.write(fd, b"kept")
        os.fdatasync(fd)
        os.write(fd, b" lost")           # after the sync began: not covered
        die()
    """)
    check(c.read("f") == b"kept", "fdatasync'ed bytes stay, later ones go: %r" % c.read("f"))
    c.close()


def case_other_fd_sync_kept():
    # mutation: do_sync() journaled only syncs through descriptors opened
    # for writing (fcntl(F_GETFL) & O_ACCMODE != O_RDONLY), i.e. per writer
    c = Case("otherfd")
    c.file("f", b"")
    c.run("""
        w = os.open(p("f"), os.O_WRONLY)
        os.write(w, b"through the first descriptor")
        r = os.open(p("f"), os.O_RDONLY)
        os.fsync(r)
        die()
    """)
    check(c.read("f") == b"through the first descriptor",
          "an fsync through another descriptor of the inode keeps the bytes: %r" % c.read("f"))
    c.close()


def case_sync_began_before_write_returned():
    # A journal written by hand: a sync that began while a write was still
    # running (its DONE comes after the sync's start) does not cover it.
    # mutation: Plan.covered() compared the write's DONE with the sync's
    # DONE instead of the sync's start
    c = Case("order")
    c.file("f", b"")
    st = os.stat(c.p("f"))
    os.makedirs(os.path.join(c.h.state, "stash"), exist_ok=True)
    os.link(c.p("f"), os.path.join(c.h.state, "stash", "%d-%d" % (st.st_dev, st.st_ino)))
    with open(c.p("f"), "wb") as f:
        f.write(b"in flight")          # what the write did to the file

    def rec(type_, id_, **kw):
        v = dict.fromkeys(powercut.FIELDS, 0)
        v.update(magic=powercut.MAGIC, size=powercut.HDR.size, type=type_, id=id_, **kw)
        return powercut.HDR.pack(*[v[k] for k in powercut.FIELDS])
    k = dict(dev=st.st_dev, ino=st.st_ino)
    j = (rec(powercut.DATA, 1, op=powercut.WRITE, off=0, len=9, oldsize=0, **k) +
         rec(powercut.SYNC, 2, op=2, **k) +       # the sync starts
         rec(powercut.DONE, 1, rc=9) +            # then the write returns
         rec(powercut.DONE, 2, rc=0))
    with open(os.path.join(c.h.state, "journal"), "wb") as f:
        f.write(j)
    c.h.cut(log=lambda m: None)
    check(c.read("f") == b"", "a sync that began before the write returned does not cover it")
    c.close()


def case_concurrent_sync():
    # Two threads: one appends numbered chunks, one fdatasyncs the same
    # inode through its own descriptor and notes, before each sync, the
    # last chunk whose write had returned (outside the root). The syncer
    # stops half way; the writer goes on. After the cut: every chunk up to
    # the last completed sync's note stays, what stays is a prefix of what
    # was written, and of the thousands of chunks written after the syncer
    # stopped none stays -- but a few written between the note and the
    # sync's start may (the note is not atomic with it), hence the slack.
    # mutation: Plan.covered() returned True for every DATA record
    c = Case("threads")
    c.file("f", b"")
    notes = os.path.join(c.base, "notes")
    c.run("""
        CH = 64
        last = [-1]
        def writer():
            fd = os.open(p("f"), os.O_WRONLY | os.O_APPEND)
            i = 0
            while True:
                os.write(fd, (b"%%08d" %% i) * (CH // 8))
                last[0] = i
                i += 1
        def syncer():
            fd = os.open(p("f"), os.O_RDONLY)
            out = os.open(%r, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            end = time.time() + 0.3
            while time.time() < end:
                b = last[0]
                os.write(out, b"start %%d\\n" %% b)
                os.fdatasync(fd)
                os.write(out, b"done %%d\\n" %% b)
        for t in (writer, syncer):
            threading.Thread(target=t, daemon=True).start()
        time.sleep(0.6)
        die()
    """ % notes)
    started, completed = -1, -1
    for line in open(notes).read().split("\n"):
        if line.startswith("start "):
            started = int(line.split()[1])
        elif line.startswith("done "):
            completed = int(line.split()[1])
    data = c.read("f") or b""
    n = len(data) // 64
    whole = len(data) % 64 == 0 and all(
        data[i * 64:(i + 1) * 64] == (b"%08d" % i) * 8 for i in range(n))
    check(completed >= 0, "the syncer completed syncs (last note %d)" % completed)
    check(whole, "what stays is a prefix of the chunks written (%d bytes)" % len(data))
    check(n >= completed + 1, "every chunk before a completed sync stays (%d >= %d)" %
          (n, completed + 1))
    check(n <= started + 200, "nothing written after the last sync began stays (%d <= %d)" %
          (n, started + 200))
    c.close()


def case_truncate_undone():
    # mutation: Undo.data() did not write the PRE records back
    c = Case("truncate")
    for f in ("a", "b", "c"):
        c.file(f, b"hello world")
    c.run("""
        fd = os.open(p("a"), os.O_RDWR)
        os.ftruncate(fd, 5)
        os.truncate(p("b"), 2)
        os.close(os.open(p("c"), os.O_WRONLY | os.O_TRUNC))
        die()
    """)
    check(c.read("a") == b"hello world", "ftruncate undone: %r" % c.read("a"))
    check(c.read("b") == b"hello world", "truncate undone: %r" % c.read("b"))
    check(c.read("c") == b"hello world", "O_TRUNC undone: %r" % c.read("c"))
    c.close()


# --- directories ---------------------------------------------------------------

def case_create_undone():
    # mutation: Plan.covered() keyed a create by the file's own inode (the
    # file's fsync counted for its name)
    c = Case("create")
    c.run("""
        put(p("f"), b"data", sync=True)  # the bytes are durable, the name is not
        die()
    """)
    check(c.read("f") is None, "a create without an fsync of the directory is undone")
    c.close()


def case_create_kept():
    # mutation: Plan.covered() returned False for every NS record
    c = Case("createkept")
    c.run("""
        put(p("f"), b"data", sync=True)
        dsync(R)
        put(p("g"), b"late")               # after the directory's fsync
        die()
    """)
    check(c.read("f") == b"data", "a create covered by an fsync of the directory stays")
    check(c.read("g") is None, "a create after that fsync is undone")
    c.close()


def case_rename():
    # mutation: Plan.covered() keyed a rename by its source directory
    # (r.pdev, r.pino) instead of its destination's
    c = Case("rename")
    os.mkdir(c.p("src"))
    os.mkdir(c.p("dst"))
    c.file("src/a", b"A")
    c.file("src/b", b"B")
    c.file("src/c", b"C")
    c.file("dst/c", b"old C")
    c.run("""
        os.rename(p("src/a"), p("dst/a"))  # kept: dst is fsync'ed
        dsync(p("dst"))
        os.rename(p("src/b"), p("dst/b"))  # undone: only the source is fsync'ed
        dsync(p("src"))
        os.rename(p("src/c"), p("dst/c"))  # undone: replaced dst/c comes back
        die()
    """)
    check(c.read("dst/a") == b"A" and c.read("src/a") is None,
          "a rename covered by an fsync of its destination directory stays")
    check(c.read("src/b") == b"B" and c.read("dst/b") is None,
          "a rename with only its source directory fsync'ed is undone")
    check(c.read("src/c") == b"C" and c.read("dst/c") == b"old C",
          "an undone rename brings back the file it replaced (%r, %r)" %
          (c.read("src/c"), c.read("dst/c")))
    c.close()


def case_unlink():
    # mutation: Undo.restore() returned at once (an unlink was never undone)
    c = Case("unlink")
    c.file("a", b"A")
    c.file("b", b"B")
    os.mkdir(c.p("d"))
    c.run("""
        os.unlink(p("a"))
        dsync(R)
        os.unlink(p("b"))
        os.rmdir(p("d"))
        die()
    """)
    check(c.read("a") is None, "an unlink covered by an fsync of the directory stays")
    check(c.read("b") == b"B", "an unlink without one is undone, bytes and all")
    check(os.path.isdir(c.p("d")), "an rmdir without one is undone")
    c.close()


def case_mkdir():
    # mutation: Undo.ns() removed an undone mkdir with os.rmdir (only when
    # empty) instead of with its subtree
    c = Case("mkdir")
    c.run("""
        os.mkdir(p("kept"))
        dsync(R)
        os.mkdir(p("gone"))
        os.mkdir(p("gone/sub"))
        put(p("gone/sub/f"), b"x", sync=True)
        dsync(p("gone/sub"))
        dsync(p("gone"))                   # everything below is durable, but
        put(p("kept/f"), b"y", sync=True)  # "gone" itself is not in R
        dsync(p("kept"))
        die()
    """, cut=False)
    try:
        c.h.cut(log=lambda m: None)
        ok = True
    except OSError as e:
        ok = False
        print(e)
    check(ok and not os.path.exists(c.p("gone")),
          "an mkdir without an fsync of its parent is undone with its whole subtree")
    check(c.read("kept/f") == b"y", "an mkdir covered by one stays, with what it holds")
    c.close()


def case_dirfd_relative():
    # Paths relative to a directory descriptor or to the working directory
    # are resolved through /proc/self/fd and getcwd.
    # mutation: pc_resolve() ignored dirfd (resolved against the working
    # directory, outside the root: nothing journaled, nothing undone)
    c = Case("dirfd")
    os.mkdir(c.p("d"))
    c.file("d/old", b"old")
    c.run("""
        d = os.open(p("d"), os.O_RDONLY | os.O_DIRECTORY)
        fd = os.open("kept", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=d)
        os.write(fd, b"kept")
        os.fsync(fd)
        os.fsync(d)                        # covers "kept", through the dirfd
        fd = os.open("gone", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=d)
        os.rename("old", "new", src_dir_fd=d, dst_dir_fd=d)
        os.mkdir("sub", dir_fd=d)
        os.chdir(p("d"))
        os.close(os.open("rel", os.O_WRONLY | os.O_CREAT, 0o600))
        die()
    """)
    check(c.read("d/kept") == b"kept", "openat(dirfd) covered by fsync(dirfd) stays")
    check(c.read("d/gone") is None and c.read("d/rel") is None and
          not os.path.exists(c.p("d/sub")),
          "openat(dirfd), mkdirat and a create relative to the working directory are undone")
    check(c.read("d/old") == b"old" and c.read("d/new") is None, "renameat is undone")
    c.close()


# --- lying disk, fail closed, ignore list -------------------------------------------

def case_lying():
    # mutation: do_sync() ignored pc.lying (journaled and ran the sync)
    c = Case("lying", lying=True)
    c.file("old", b"old")
    c.run("""
        os.mkdir(p("d"))
        dsync(R)
        put(p("d/f"), b"data", sync=True)
        dsync(p("d"))
        fd = os.open(p("old"), os.O_WRONLY | os.O_APPEND)
        os.write(fd, b" new")
        os.fdatasync(fd)
        os.sync()
        die()
    """)
    check(not os.path.exists(c.p("d")), "lying disk: every directory change is undone")
    check(c.read("old") == b"old", "lying disk: every write is undone: %r" % c.read("old"))
    c.close()


def case_fail_closed():
    # mutation: refuse_path() and refuse_fd() returned without pc_die();
    # for O_DSYNC: change_begin() did not look at O_DSYNC
    for what, code in (
            ("stdio", 'f = open("/dev/null")\n'
                      'libc = ctypes.CDLL(None)\n'
                      'libc.fopen.restype = ctypes.c_void_p\n'
                      'libc.fopen(p("log").encode(), b"a")'),
            ("mmap", 'import mmap\n'
                     'put(p("m"), b"x" * 4096)\n'
                     'fd = os.open(p("m"), os.O_RDWR)\n'
                     'mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_WRITE)'),
            ("copy_file_range", 'put(p("s"), b"x" * 10)\n'
                                'a = os.open(p("s"), os.O_RDONLY)\n'
                                'b = os.open(p("t"), os.O_WRONLY | os.O_CREAT)\n'
                                'os.copy_file_range(a, b, 10)'),
            ("O_DSYNC", 'fd = os.open(p("d"), os.O_WRONLY | os.O_CREAT | os.O_DSYNC)\n'
                        'os.write(fd, b"x")')):
        c = Case("closed-" + what)
        c.expect_abort = True
        c.run(code + "\nprint('not stopped')\n", cut=False)
        check(c.rc == -signal.SIGABRT and "powercut: cannot track" in c.err,
              "%s write into the root stops the program (rc %s: %s)" %
              (what, c.rc, c.err.strip().splitlines()[-1:] if c.err else ""))
        c.close()
    c = Case("ignored")
    c.run("""
        libc = ctypes.CDLL(None)
        libc.fopen.restype = ctypes.c_void_p
        f = libc.fopen(p("tracking.log").encode(), b"a")
        print("ok" if f else "no")
        os.exit(0) if False else None
    """, cut=False)
    check(c.rc == 0, "fopen of a file on POWERCUT_IGNORE (tracking.log) is let through")
    c.close()


CASES = {n[len("case_"):]: f for n, f in sorted(globals().items()) if n.startswith("case_")}

if __name__ == "__main__":
    names = sys.argv[2:] or list(CASES)
    for n in names:
        print("--- %s" % n)
        CASES[n]()
    if failures:
        print("%d failed" % len(failures))
        sys.exit(1)
    print("all passed")
