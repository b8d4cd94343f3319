"""meshnode under the power-cut harness (tests/support/powercut.py): what
the durability tests share. A node's files live under ROOT (the modelled
disk); its log and everything the test itself keeps live beside it."""
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import nodelib  # noqa: E402
import powercut  # noqa: E402


def lib_for(meshnode):
    return powercut.find_lib(meshnode)


def add_users(ldif, names, home="N1"):
    """More recipients homed on one server of a mkorg.py organization."""
    with open(ldif, "a") as f:
        for u in names:
            f.write("\ndn: uid=%s,o=Lab\nobjectClass: inetOrgPerson\nobjectClass: mmRecipient\n"
                    "uid: %s\ncn: %s\nsn: %s\nmail: %s@example.test\n"
                    "mmHomeServer: cn=%s,cn=Lab,o=Lab\n" % (u, u, u, u, u, home))


class Node:
    """One meshnode process at a time on one spool, under one harness."""

    def __init__(self, meshnode, ldif, server, spool, harness, logdir, extra=()):
        self.meshnode, self.ldif, self.server, self.spool = meshnode, ldif, server, spool
        self.h, self.logdir, self.extra = harness, logdir, list(extra)
        self.p = None
        self.logpath = os.path.join(logdir, server + ".log")

    def args(self, more=()):
        return [self.meshnode, "--directory", "ldif:" + self.ldif, "--server", self.server,
                "--spool", self.spool] + self.extra + list(more)

    def start(self, *more):
        with open(self.logpath, "ab") as log:
            self.p = nodelib.start(self.args(more), ready="ready", stderr=log,
                                   env=self.h.env(self.meshnode))
        self.p.is_node = True
        return self.p

    def run(self, *more, timeout=30):
        """A start that is expected to stop: its exit code and stderr. A
        node that starts instead is stopped again (exit code None)."""
        with open(self.logpath, "ab") as log:
            start = log.tell()
            p = subprocess.Popen(self.args(more), env=self.h.env(self.meshnode),
                                 stdout=subprocess.PIPE, stderr=log)
            line = p.stdout.readline().strip()   # "ready", or "" when it stopped
            if line == b"ready":
                p.terminate()
            rc = p.wait(timeout)
        with open(self.logpath, "rb") as log:
            log.seek(start)
            err = log.read().decode(errors="replace")
        return (None if line == b"ready" else rc), err

    def kill(self):
        self.p.kill()
        self.p.wait()

    def cut(self):
        """SIGKILL, then the power cut: the files become what the disk kept."""
        if self.p.poll() is None:
            self.kill()
        return self.h.cut(log=self.note)

    def stop(self):
        self.p.terminate()
        self.p.wait(30)
        return self.p.returncode

    def note(self, msg):
        with open(self.logpath, "a") as log:
            log.write(msg + "\n")

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()


def queues(meshctl, spool):
    r = subprocess.run([meshctl, "--spool", spool, "--json", "queues"], capture_output=True,
                       text=True)
    return json.loads(r.stdout)["queues"] if r.returncode == 0 else None


def idle(meshctl, spool):
    """The node has nothing left to deliver (every queue is empty)."""
    qs = queues(meshctl, spool)
    return qs is not None and all(q["messages"] == 0 for q in qs)


def seqs(files, header="X-Seq"):
    """X-Seq number -> how many of the files carry it."""
    seen = {}
    pat = re.compile(r"^%s: (\d+)" % header, re.M)
    for f in files:
        try:
            with open(f, errors="replace") as fh:
                m = pat.search(fh.read())
        except FileNotFoundError:
            continue
        if m:
            n = int(m.group(1))
            seen[n] = seen.get(n, 0) + 1
    return seen
