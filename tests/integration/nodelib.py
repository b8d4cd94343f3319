"""Helpers for the meshnode integration tests: real processes on loopback,
polling with deadlines (never a fixed sleep), and cleanup on exit."""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

procs = []
failures = []


def _reap():
    for p in procs:
        if p.poll() is None:
            p.kill()


atexit.register(_reap)  # also when a test dies half way


def check(cond, what):
    """Record a failed assertion and go on, so one run shows every problem."""
    if cond:
        print("ok   " + what)
    else:
        print("FAIL " + what)
        failures.append(what)


workdirs = []


def done():
    """Stop everything; every meshnode still running must exit 0 on SIGTERM
    (under the sanitizers that also means no leak and no error)."""
    running = [p for p in procs if p.poll() is None]
    for p in running:
        p.terminate()
    for p in running:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        if getattr(p, "is_node", False):
            check(p.returncode == 0, "%s exits 0 on SIGTERM (got %s)" % (p.args[4], p.returncode))
    if failures:
        print("%d failed; files kept in %s" % (len(failures), " ".join(workdirs)))
        sys.exit(1)
    for d in workdirs:
        shutil.rmtree(d, ignore_errors=True)
    print("all passed")


def workdir(name):
    d = tempfile.mkdtemp(prefix="mm-%s." % name)
    os.chmod(d, 0o755)
    workdirs.append(d)
    return d


def wait_for(pred, timeout=20.0, step=0.02):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def start(args, ready=None, **kw):
    """Start a process; with ready, wait until it prints that line."""
    p = subprocess.Popen(args, stdout=subprocess.PIPE if ready else subprocess.DEVNULL,
                         stderr=kw.pop("stderr", None), **kw)
    procs.append(p)
    if ready:
        line = p.stdout.readline().decode().strip()
        if line != ready:
            raise RuntimeError("%s: wanted %r, got %r" % (args[0], ready, line))
    return p


def node(meshnode, ldif, server, spool, *extra):
    log = open(os.path.join(os.path.dirname(spool), server + ".log"), "ab")
    spec = ldif if ldif.startswith(("ldif:", "ldap://")) else "ldif:" + ldif
    p = start([meshnode, "--directory", spec, "--server", server,
               "--spool", spool] + list(extra), ready="ready", stderr=log)
    p.is_node = True
    return p


def queue(meshctl, spool, name):
    """One queue of a running node, as meshctl --json queues shows it."""
    r = subprocess.run([meshctl, "--spool", spool, "--json", "queues"], capture_output=True,
                       text=True)
    for q in json.loads(r.stdout)["queues"] if r.returncode == 0 else []:
        if q["name"] == name:
            return q
    return None


def last_error(meshctl, spool, name):
    q = queue(meshctl, spool, name)
    return q["last_error"] if q else None


def port_open(host, port):
    try:
        socket.create_connection((host, port), 0.2).close()
        return True
    except OSError:
        return False


def sink(addr, dump_dir, *flags):
    """smtp-sink on addr, one file per transaction in dump_dir."""
    os.makedirs(dump_dir, exist_ok=True)
    os.chmod(dump_dir, 0o777)
    host, port = addr.rsplit(":", 1)
    host = host.strip("[]")
    p = start(["smtp-sink", "-u", "nobody", "-d", dump_dir + "/%H%M%S."] + list(flags) +
              [addr, "256"], stderr=subprocess.DEVNULL)
    wait_for(lambda: port_open(host, int(port)), 10)
    return p


def files(d):
    try:
        return [os.path.join(d, f) for f in os.listdir(d)]
    except FileNotFoundError:
        return []


def maildir(spool, addr):
    return files(os.path.join(spool, "mailstore", addr, "new"))


class Raw:
    """A bare SMTP client: send exact bytes, read whole replies."""

    def __init__(self, host, port, timeout=20):
        self.s = socket.create_connection((host, port), timeout)
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def reply(self):
        lines = []
        while True:
            while b"\n" not in self.buf:
                chunk = self.s.recv(65536)
                if not chunk:
                    return " | ".join(lines) if lines else None
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.rstrip(b"\r").decode("latin-1")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return line if len(lines) == 1 else " | ".join(lines)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def close(self):
        self.s.close()
