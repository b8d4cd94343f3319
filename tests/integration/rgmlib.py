"""Helpers for the rgmaster integration tests (rgmaster_*.py): an
organization with master candidates (tests/support/mkorg.py and more LDIF),
certificates from `meshctl pki`, rgmaster processes, `meshctl --connect`,
and raw 691 frames for the hostile checks (a protobuf subset written here,
so the tests need no protobuf module: the field numbers are
proto/mailmesh.proto's)."""
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodelib import procs, start, wait_for  # noqa: E402,F401

# --- the organization ------------------------------------------------------


def org(mkorg, path, ip, candidates=(), far=False, second=None):
    """mkorg.py's group Lab (LAB-RGM on IP:6910, priority 100, server N1 on
    IP:2525, and N2 on second:2525 when given) with more candidates of Lab:
    (name, ip, priority) each on ip:6910; far adds a group Far (server F1,
    master FAR-RGM) so that the table has an entry the master does not
    own."""
    subprocess.run([sys.executable, mkorg, path, "--bind", "%s:2525" % ip] +
                   (["--second", "%s:2525" % second] if second else []), check=True)
    with open(path, "a") as f:
        for name, cip, prio in candidates:
            f.write("\ndn: cn=%s,cn=Lab,o=Lab\nobjectClass: mmMaster\ncn: %s\n"
                    "mmRoutingAddress: %s:6910\nmmPriority: %d\n" % (name, name, cip, prio))
        if far:
            f.write("\ndn: cn=Far,o=Lab\nobjectClass: mmRoutingGroup\ncn: Far\n"
                    "\ndn: cn=FAR-RGM,cn=Far,o=Lab\nobjectClass: mmMaster\ncn: FAR-RGM\n"
                    "mmRoutingAddress: %s:6920\nmmPriority: 10\n"
                    "\ndn: cn=F1,cn=Far,o=Lab\nobjectClass: mmServer\ncn: F1\n"
                    "mmFqdn: f1.lab.test\nmmRoutingAddress: %s:6921\n"
                    "\ndn: cn=SMTP,cn=F1,cn=Far,o=Lab\nobjectClass: mmVirtualServer\ncn: SMTP\n"
                    "mmBind: %s:2526\nmmFqdn: f1.lab.test\n" % (ip, ip, ip))
    return path


# --- certificates ----------------------------------------------------------


class Pki:
    """The organization's CA in W/ca (its key stays there), and one --tls
    directory per name with ca.pem, NAME.pem, NAME.key only."""

    def __init__(self, meshctl, ldif, w):
        self.meshctl, self.ldif, self.w = meshctl, ldif, w
        self.ca = os.path.join(w, "ca")
        r = subprocess.run([meshctl, "pki", "init", "--dir", self.ca, "--org", "Lab"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("pki init: " + r.stderr)

    def issue(self, *args):
        r = subprocess.run([self.meshctl, "--directory", "ldif:" + self.ldif, "pki", "issue",
                            "--dir", self.ca] + list(args), capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("pki issue: " + r.stderr)

    def dir(self, name, extra=()):
        d = tempfile.mkdtemp(prefix="tls-%s." % name, dir=self.w)
        for f in ("ca.pem", name + ".pem", name + ".key"):
            shutil.copy2(os.path.join(self.ca, f), d)
        for src, dst in extra:
            shutil.copy2(src, os.path.join(d, dst))
        return d


def self_signed(w, name, kind):
    """A stranger's certificate claiming mailmesh:KIND:NAME, and its CA
    file (itself), in a directory of its own."""
    d = os.path.join(w, "stranger-%s" % name)
    os.makedirs(d, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", d + "/%s.key" % name,
                    "-out", d + "/%s.pem" % name, "-days", "30", "-subj",
                    "/O=Lab/OU=%s/CN=%s" % (kind, name), "-addext",
                    "subjectAltName=URI:mailmesh:%s:%s" % (kind, name)],
                   check=True, capture_output=True)
    shutil.copy(d + "/%s.pem" % name, d + "/ca.pem")
    return d


# --- rgmaster and meshctl ----------------------------------------------------

FAST = ["--set", "ping_interval_ms=100", "--set", "dead_after=3", "--set", "settle_ms=500",
        "--set", "retry_ms=100", "--set", "probe_interval_ms=500"]


def master(rgmaster, ldif, name, state, tls=None, extra=(), log=None):
    """An rgmaster started and waited for ("ready"); stderr to LOG."""
    args = [rgmaster, "--directory", "ldif:" + ldif, "--name", name, "--state", state]
    args += ["--tls", tls] if tls else ["--set", "insecure=1"]
    logf = open(log or state.rstrip("/") + ".log", "ab")
    p = start(args + FAST + list(extra), ready="ready", stderr=logf)
    p.is_master, p.name = True, name
    return p


def run(rgmaster, *args, timeout=20):
    """rgmaster expected to stop: (exit status, stderr). One that starts
    instead ("ready") is stopped again, and its status is None."""
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen([rgmaster] + list(args), stdout=subprocess.PIPE, stderr=err)
        line = p.stdout.readline().strip()
        if line == b"ready":
            p.terminate()
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        p.stdout.close()
        err.seek(0)
        text = err.read().decode(errors="replace")
    return (None if line == b"ready" else rc), text


def ctl(meshctl, address, tls, *args, as_=None):
    cmd = [meshctl, "--connect", address, "--tls", tls]
    if as_:
        cmd += ["--as", as_]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)


def table(meshctl, address, tls, as_=None):
    """The live table as JSON, or None when it does not come."""
    r = ctl(meshctl, address, tls, "--json", "table", as_=as_)
    if r.returncode != 0:
        return None
    try:
        return json.loads(r.stdout)
    except ValueError:
        return None


def group(t, name="Lab"):
    for g in (t or {}).get("groups", []):
        if g["name"] == name:
            return g
    return None


def version(t, name="Lab"):
    g = group(t, name)
    v = g["versions"] if g else None
    return (v["incarnation"], v["major"], v["minor"], v["user"]) if v else None


def offline(meshctl, ldif):
    r = subprocess.run([meshctl, "--directory", "ldif:" + ldif, "--json", "table"],
                       capture_output=True, text=True)
    return json.loads(r.stdout)


def read(path):
    """A file's text, None when it is not there."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return None


def log_has(path, text):
    try:
        with open(path, errors="replace") as f:
            return text in f.read()
    except FileNotFoundError:
        return False


# --- raw 691 frames ----------------------------------------------------------

ROLE_NODE, ROLE_MASTER, ROLE_ADMIN = 0, 1, 2


def _varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num, value):
    """A protobuf field: int (varint) or bytes/str (length-delimited)."""
    if isinstance(value, int):
        return _varint(num << 3) + _varint(value)
    if isinstance(value, str):
        value = value.encode()
    return _varint(num << 3 | 2) + _varint(len(value)) + value


def _msg(*fields):
    return b"".join(_field(n, v) for n, v in fields if v is not None)


def hello(name, role, group="", major=1):
    return _msg((1, name), (2, group), (5, major), (6, 0), (7, role))


def frame(seq, body_field, body):
    """Length-prefixed Frame {seq, body}: hello 2, query 7, ping 9."""
    f = _msg((1, seq), (body_field, body))
    return struct.pack(">I", len(f)) + f


def hello_frame(name, role, group="", major=1):
    return frame(1, 2, hello(name, role, group, major))


def query_frame(command, *args):
    return frame(2, 7, _msg((1, command), *[(2, a) for a in args]))


def ping_frame(nonce):
    return frame(3, 9, _msg((1, nonce)))


def _parse(buf):
    """{field: [values]}: varints as int, length-delimited as bytes."""
    out, i = {}, 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(buf, i)
        elif wt == 2:
            n, i = _read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(num, []).append(v)
    return out


def _read_varint(buf, i):
    shift = v = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


BODY = {2: "hello", 3: "state_report", 4: "table_push", 5: "digest_probe", 6: "ack",
        7: "query", 8: "reply", 9: "ping", 10: "pong"}


def decode(payload):
    """(kind, fields of the body)."""
    f = _parse(payload)
    for num, kind in BODY.items():
        if num in f:
            return kind, _parse(f[num][0])
    return "none", {}


class Raw691:
    """One 691 connection from Python: plain TCP, or TLS with a client
    certificate (cert, key) checked against cafile."""

    def __init__(self, address, cert=None, cafile=None, timeout=10):
        host, port = address.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout)
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            ctx.check_hostname = False
            ctx.load_verify_locations(cafile)
            ctx.load_cert_chain(*cert)
            self.s = ctx.wrap_socket(self.s)
        self.buf = b""

    def send(self, data):
        """Send; a peer that has closed already is no error here (the
        checks look at what comes back)."""
        try:
            self.s.sendall(data)
        except (OSError, ssl.SSLError):
            pass

    def frame(self):
        """The next frame as (kind, fields); None at EOF or on an error."""
        try:
            while len(self.buf) < 4 or len(self.buf) < 4 + struct.unpack(">I", self.buf[:4])[0]:
                chunk = self.s.recv(65536)
                if not chunk:
                    return None
                self.buf += chunk
        except (OSError, ssl.SSLError):
            return None
        n = struct.unpack(">I", self.buf[:4])[0]
        payload, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
        return decode(payload)

    def closed(self, timeout=5):
        """True when the peer closes (EOF or reset) within timeout,
        whatever it sends before."""
        self.s.settimeout(timeout)
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                if not self.s.recv(65536):
                    return True
        except socket.timeout:
            return False
        except (OSError, ssl.SSLError):
            return True
        return False

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


class Member:
    """A member from Python: Hello as server `name` of `group`, a snapshot
    report (its server up, its bridgeheads up), and Pongs to the master's
    Pings and a Ping of its own every 200 ms, so that the master hears a
    member (a master that has heard none publishes nothing). A connection
    that closes (a master not active yet answers STANDBY and closes) is
    made again 200 ms later, to the next of address (one "ip:port", or a
    list: the candidates in the order a node dials them). TLS with cert =
    (pem, key) and cafile, or plain TCP. Stop with close()."""

    def __init__(self, address, name, group="Lab", cert=None, cafile=None):
        import threading
        self.args = (address, name, group, cert, cafile)
        self.c = None
        self.frames = []
        self.stop = False
        self.lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()
        threading.Thread(target=self._ping, daemon=True).start()

    def _connect(self):
        address, name, group, cert, cafile = self.args
        if isinstance(address, (list, tuple)):
            self.turn = getattr(self, "turn", -1) + 1
            address = address[self.turn % len(address)]
        try:
            c = Raw691(address, cert=cert, cafile=cafile, timeout=10)
        except (OSError, ssl.SSLError):
            return None
        c.send(hello_frame(name, ROLE_NODE, group))
        c.send(frame(2, 3, _msg((1, name), (3, 1))))
        return c

    def _run(self):
        while not self.stop:
            c = self._connect()
            with self.lock:
                self.c = c
            while c is not None and not self.stop:
                f = c.frame()
                if f is None:
                    break
                kind, body = f
                if kind == "ping":
                    with self.lock:
                        c.send(frame(9, 10, _msg((1, body.get(1, [0])[0]))))
                self.frames.append(f)
            if c is not None:
                c.close()
            time.sleep(0.2)

    def _ping(self):
        n = 0
        while not self.stop:
            n += 1
            with self.lock:
                if self.c is not None:
                    self.c.send(ping_frame(n))
            time.sleep(0.2)

    def close(self):
        self.stop = True
        with self.lock:
            if self.c is not None:
                self.c.close()


def terminate(p, timeout=20):
    """SIGTERM, and the exit status."""
    p.terminate()
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


def done():
    """Every rgmaster still running must exit 0 on SIGTERM (under the
    sanitizers that also means no leak and no error); then nodelib's end."""
    import nodelib
    for p in [p for p in procs if getattr(p, "is_master", False) and p.poll() is None]:
        rc = terminate(p)
        nodelib.check(rc == 0, "%s exits 0 on SIGTERM (got %s) (mutation: the loop's end "
                      "returning status EX_SOFTWARE)" % (p.name, rc))
    nodelib.done()
