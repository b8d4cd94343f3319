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
    """Record a failed assertion and go on, so one run shows every problem
    (with MM_FAIL_FAST=1 in the environment, as mutation runs want: stop at
    the first, every process killed)."""
    if cond:
        print("ok   " + what)
    else:
        print("FAIL " + what)
        failures.append(what)
        if os.environ.get("MM_FAIL_FAST"):
            sys.stdout.flush()
            os._exit(_fail_fast())


def _fail_fast():
    _reap()
    return 1


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


class PySMTP:
    """A next hop in Python, for what smtp-sink cannot do: a reply of its
    own per recipient (rcpt(addr) -> reply line, default 250), STARTTLS
    with any certificate (tls: an ssl.SSLContext, replaceable while it
    runs). Every message it accepts is kept in .messages as
    (sender, [recipients], bytes)."""

    def __init__(self, addr, rcpt=None, tls=None):
        import threading
        self.rcpt, self.tls, self.messages = rcpt or (lambda a: "250 2.1.5 ok"), tls, []
        self.sessions = 0
        host, port = addr.rsplit(":", 1)
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((host.strip("[]"), int(port)))
        self.ls.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import threading
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            self.sessions += 1
            threading.Thread(target=self._session, args=(s,), daemon=True).start()

    def _session(self, s):
        f = s.makefile("rb")
        sender, rcpts = None, []
        try:
            s.sendall(b"220 pysmtp.test ESMTP\r\n")
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line.decode("latin-1").rstrip("\r\n")
                verb = cmd.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    ext = ["PIPELINING"] + (["STARTTLS"] if self.tls and
                                            not isinstance(s, ssl_mod().SSLSocket) else [])
                    r = "250-pysmtp.test\r\n" + "".join("250-%s\r\n" % e for e in ext[:-1])
                    s.sendall((r + "250 %s\r\n" % ext[-1]).encode())
                elif verb == "STARTTLS":
                    s.sendall(b"220 2.0.0 go\r\n")
                    s = self.tls.wrap_socket(s, server_side=True)
                    f = s.makefile("rb")
                elif verb == "MAIL":
                    sender, rcpts = cmd[10:].strip("<>"), []
                    s.sendall(b"250 2.1.0 ok\r\n")
                elif verb == "RCPT":
                    addr = cmd[8:].split(">")[0].strip("<")
                    r = self.rcpt(addr)
                    if r.startswith("2"):
                        rcpts.append(addr)
                    s.sendall((r + "\r\n").encode())
                elif verb == "DATA":
                    if not rcpts:
                        s.sendall(b"554 5.5.1 no valid recipients\r\n")
                        continue
                    s.sendall(b"354 go\r\n")
                    body = b""
                    while True:
                        l = f.readline()
                        if not l or l == b".\r\n":
                            break
                        body += l
                    self.messages.append((sender, rcpts, body))
                    s.sendall(b"250 2.0.0 queued\r\n")
                elif verb == "QUIT":
                    s.sendall(b"221 2.0.0 bye\r\n")
                    return
                else:
                    s.sendall(b"250 2.0.0 ok\r\n")
        except OSError:
            return
        finally:
            s.close()


def ssl_mod():
    import ssl
    return ssl


def make_pki(tls_dir, ca_dir, objects, stranger=True):
    """An organization CA made with the openssl tool in tls_dir (ca.pem;
    its key apart in ca_dir) and a key and certificate per (name, kind,
    file) of objects, naming the object and its kind as meshctl pki does
    (URI:mailmesh:<kind>:<name>); with stranger, a self-signed
    stranger.pem/.key with CN N2 that no one trusts."""
    def sh(*args):
        subprocess.run(args, check=True, cwd=tls_dir, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    sh("openssl", "req", "-x509", *ec, "-keyout", ca_dir + "/ca.key", "-out", "ca.pem",
       "-days", "30", "-subj", "/CN=Lab CA")
    for name, kind, f in objects:
        sh("openssl", "req", *ec, "-keyout", f + ".key", "-out", f + ".csr",
           "-subj", "/OU=%s/CN=%s" % (kind, name),
           "-addext", "subjectAltName=URI:mailmesh:%s:%s" % (kind, name))
        sh("openssl", "x509", "-req", "-in", f + ".csr", "-CA", "ca.pem", "-CAkey",
           ca_dir + "/ca.key", "-CAserial", ca_dir + "/ca.srl", "-CAcreateserial",
           "-out", f + ".pem", "-days", "30", "-copy_extensions", "copy")
    if stranger:
        sh("openssl", "req", "-x509", *ec, "-keyout", "stranger.key", "-out", "stranger.pem",
           "-days", "30", "-subj", "/CN=N2")
