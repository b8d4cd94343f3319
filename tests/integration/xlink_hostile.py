#!/usr/bin/env python3
"""X-LINK2STATE against hostile peers (DESIGN §5.2, issue #15): the real
meshnode, over real SMTP, from Python's smtplib and ssl.

The organization Lab: group A (master A-RGM, server A1 on 127.0.81.x),
group B (B-RGM, B1 on 127.0.82.x), a routing-group connector each way
(A-B: A1 local, B1 remote bridgehead; B-A the other way), and group C
(127.0.83.x) in the directory only: its candidates C-RGM and C-RGM2 and
its servers C1..C14 never run, but their keys are ours, so the test can
forge -- and C also holds a server named B-RGM, the name of B's master,
whose certificate (made here with the openssl tool, as an operator could)
carries an Ed25519 key. A1 is the target throughout; the hostile peers
present the certificates of C's servers, one for each case, so that a
penalty (or a failure under a mutation) stays with its case.

- Unauthenticated (plain, TLS without a client certificate, a master's
  certificate, AUTH PLAIN as a user): every X-LINK2STATE gets 530 5.7.0
  (500 5.5.2 for a line over 1,024 octets), and no table changes.
- Authenticated as an organization server but hostile: chunks out of
  order, lines over the limit, bad base64, transfers that do not decode,
  10 MB of chunks (552 once over 8 MiB), and after each the session goes
  on; a mail transaction's state; the error count.
- Entries: a positive control first (C's entry, newer, signed by C-RGM
  with the key meshctl pki gave it: taken, and flooded on to B1), so that
  the Python canonical encoding is proven and each refusal below fails for
  the reason it claims. Then (a) a bad signature, (c) a server's
  certificate, (e) an unsigned entry: 421 4.7.0, the session closed, that
  peer 454 for 60 s (and heard again after); (b) a master of another group
  and (d) a revoked master (a peer with another directory or CRL relays
  them in good faith), older versions, the receiver's own group, a group not in
  the directory, a baseline: dropped with 250, no penalty. Nothing refused
  is merged: A1's digest and versions, and B1's, stay as they were.
- A1 keeps serving mail: to a local Maildir and to B1 over the connector.

Each check names, in "(mutation: ...)", the change to the code it was seen
to fail on.

usage: xlink_hostile.py MESHNODE MESHCTL MKORG SCHEMA RGMASTER
"""
import base64
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rgmlib as R  # noqa: E402
import routing_lib as L  # noqa: E402
from nodelib import check, maildir, node, wait_for, workdir  # noqa: E402

meshnode, meshctl = sys.argv[1:3]
rgmaster = sys.argv[5]
W = workdir("xlink-hostile")

# --- the organization -----------------------------------------------------------

A1_SMTP, B1_SMTP = ("127.0.81.1", 2525), ("127.0.82.1", 2525)
A1, B1 = "127.0.81.1:6911", "127.0.82.1:6911"
C_SERVERS = ["C%d" % i for i in range(1, 15)]


def write_ldif(path):
    w = ["dn: o=Lab\nobjectClass: mmOrganization\no: Lab\n"]

    def group(g, net, masters, servers):
        w.append("dn: cn=%s,o=Lab\nobjectClass: mmRoutingGroup\ncn: %s\n" % (g, g))
        for name, octet, prio in masters:
            w.append("dn: cn=%s,cn=%s,o=Lab\nobjectClass: mmMaster\ncn: %s\n"
                     "mmRoutingAddress: %s%d:6910\nmmPriority: %d\n"
                     % (name, g, name, net, octet, prio))
        for name, octet in servers:
            w.append("dn: cn=%s,cn=%s,o=Lab\nobjectClass: mmServer\ncn: %s\n"
                     "mmFqdn: %s.lab.test\nmmRoutingAddress: %s%d:6911\n"
                     % (name, g, name, name.lower(), net, octet))
            w.append("dn: cn=SMTP,cn=%s,cn=%s,o=Lab\nobjectClass: mmVirtualServer\ncn: SMTP\n"
                     "mmBind: %s%d:2525\nmmFqdn: %s.lab.test\nmmRelayAllow: 127.0.0.0/8\n"
                     % (name, g, net, octet, name.lower()))

    group("A", "127.0.81.", [("A-RGM", 10, 100)], [("A1", 1)])
    group("B", "127.0.82.", [("B-RGM", 10, 100)], [("B1", 1)])
    # names are unique per kind: a server may be called like B's master
    group("C", "127.0.83.", [("C-RGM", 10, 100), ("C-RGM2", 11, 50)],
          [(n, i + 1) for i, n in enumerate(C_SERVERS)] + [("B-RGM", 20)])
    for name, g, target, local, remote in (("A-B", "A", "B", "A1", "B1"),
                                           ("B-A", "B", "A", "B1", "A1")):
        w.append("dn: cn=%s,cn=%s,o=Lab\nobjectClass: mmConnector\ncn: %s\n"
                 "mmConnectorType: routing-group\nmmCost: 10\n"
                 "mmLocalBridgehead: cn=SMTP,cn=%s,cn=%s,o=Lab\nmmTargetGroup: cn=%s,o=Lab\n"
                 "mmRemoteBridgehead: cn=SMTP,cn=%s,cn=%s,o=Lab\n"
                 % (name, g, name, local, g, target, remote, target))
    w.append("dn: cn=Policy,o=Lab\nobjectClass: mmRecipientPolicy\ncn: Policy\n"
             "mmAuthoritativeDomain: lab.test\n")
    for uid, home, g in (("alice", "A1", "A"), ("bob", "B1", "B")):
        w.append("dn: uid=%s,o=Lab\nobjectClass: inetOrgPerson\nobjectClass: mmRecipient\n"
                 "uid: %s\ncn: %s\nsn: %s\nmail: %s@lab.test\n"
                 "mmHomeServer: cn=%s,cn=%s,o=Lab\nuserPassword: %s-secret\n"
                 % (uid, uid, uid, uid, uid, home, g, uid))
    with open(path, "w") as f:
        f.write("\n".join(w))


LDIF = os.path.join(W, "lab.ldif")
write_ldif(LDIF)
PKI = R.Pki(meshctl, LDIF, W)
PKI.issue("A1", "B1", "A-RGM", "C-RGM", "C-RGM2", "admin", *C_SERVERS)
PKI.issue("--master", "B-RGM")  # B-RGM is a server's name too
ADMIN = PKI.dir("admin")
CA_PEM = os.path.join(PKI.ca, "ca.pem")
FORGE = os.path.join(W, "forge")
os.makedirs(FORGE)


def openssl(*args):
    subprocess.run(("openssl",) + args, check=True, capture_output=True)


# The server B-RGM's certificate, with an Ed25519 key (meshctl gives servers
# P-256 keys; the openssl tool does what it is told): an entry of group B
# that it signs fails the certificate's kind and nothing else.
SRV_BRGM = (os.path.join(FORGE, "server-B-RGM.key"), os.path.join(FORGE, "server-B-RGM.pem"))
openssl("genpkey", "-algorithm", "ed25519", "-out", SRV_BRGM[0])
openssl("req", "-new", "-key", SRV_BRGM[0], "-out", FORGE + "/server-B-RGM.csr",
        "-subj", "/O=Lab/OU=server/CN=B-RGM",
        "-addext", "subjectAltName=URI:mailmesh:server:B-RGM",
        "-addext", "basicConstraints=critical,CA:FALSE",
        "-addext", "keyUsage=critical,digitalSignature")
openssl("x509", "-req", "-in", FORGE + "/server-B-RGM.csr", "-CA", CA_PEM,
        "-CAkey", os.path.join(PKI.ca, "ca.key"), "-CAserial", FORGE + "/ca.srl",
        "-CAcreateserial", "-out", SRV_BRGM[1], "-days", "30", "-copy_extensions", "copy")

# fast, but a member is given 3 s of silence (dead_after) before its master
# counts it down: a stall of a loaded machine under ASan must not issue a
# version while the checks compare versions and digests
FAST = ["--set", "xlink_digest_interval_ms=1000", "--set", "ping_interval_ms=100",
        "--set", "dead_after=30", "--set", "master_retry_min_ms=100",
        "--set", "master_retry_max_ms=300"]
A1_TLS = PKI.dir("A1")
for m in ("A-RGM", "B-RGM"):
    R.master(rgmaster, LDIF, m, os.path.join(W, "state-" + m), tls=PKI.dir(m),
             extra=["--set", "dead_after=30"], log=os.path.join(W, m + ".log"))
a1 = node(meshnode, LDIF, "A1", os.path.join(W, "a1"), "--tls", A1_TLS, *FAST)
node(meshnode, LDIF, "B1", os.path.join(W, "b1"), "--tls", PKI.dir("B1"), *FAST)
A1_LOG = os.path.join(W, "A1.log")

# --- the tables ------------------------------------------------------------------


def view(addr=A1):
    """(digest, {group: (version, signed_by)}) of a live node, or None."""
    t = R.table(meshctl, addr, ADMIN)
    if t is None:
        return None
    return t["digest"], {g["name"]: (R.version(t, g["name"]), g["signed_by"])
                         for g in t["groups"]}


def signed_everywhere(v, groups="AB"):
    return v is not None and all(v[1][g][1] for g in groups)


def converged():
    va, vb = view(A1), view(B1)
    if signed_everywhere(va) and signed_everywhere(vb) and va == vb:
        return va
    return None


# --- SMTP sessions ----------------------------------------------------------------


def smtp(cert=None, tls=True, addr=A1_SMTP):
    """A session at addr after EHLO; with tls, after STARTTLS (and EHLO
    again), showing cert = (key, pem) when given."""
    c = smtplib.SMTP(*addr, timeout=120)
    c.ehlo("hostile.test")
    if tls:
        ctx = ssl.create_default_context(cafile=CA_PEM)
        ctx.check_hostname = False
        if cert:
            ctx.load_cert_chain(cert[1], cert[0])
        c.starttls(context=ctx)
        c.ehlo("hostile.test")
    return c


def cert(name):
    return os.path.join(PKI.ca, name + ".key"), os.path.join(PKI.ca, name + ".pem")


def server(name):
    """A session as the organization's server NAME: its certificate from
    meshctl pki, STARTTLS, AUTH EXTERNAL (235)."""
    c = smtp(cert(name))
    code, text = c.docmd("AUTH", "EXTERNAL =")
    if code != 235:
        raise RuntimeError("AUTH EXTERNAL as %s: %d %s" % (name, code, text))
    return c


def reply(c):
    """The next reply's last line as "CODE TEXT" ("" when the session is
    gone); all its lines in c.lines."""
    try:
        code, text = c.getreply()
    except (smtplib.SMTPServerDisconnected, OSError):
        c.lines = []
        return ""
    c.lines = text.decode("latin-1").split("\n")
    return "%d %s" % (code, c.lines[-1])


def cmd(c, line):
    try:
        c.send(line + "\r\n")
    except (smtplib.SMTPServerDisconnected, OSError):
        return ""
    return reply(c)


def closed(c, timeout=30):
    """True when the server closes the session within timeout."""
    try:
        c.sock.settimeout(timeout)
        return c.file.readline() == b""
    except socket.timeout:
        return False
    except (OSError, ssl.SSLError, ValueError, AttributeError):
        return True


def quit_(c):
    try:
        c.quit()
    except (smtplib.SMTPException, OSError):
        pass


# --- transfers ---------------------------------------------------------------------

CHUNK_RAW = 735  # what the node puts in a chunk (xlink.h): a line stays under 1,024
ZERO = "0" * 64  # a digest no table has: the server answers "differs"


def chunk_lines(data, raw=CHUNK_RAW):
    parts = [data[i:i + raw] for i in range(0, len(data), raw)]
    for i, p in enumerate(parts):
        kw = ("FIRST " if i == 0 else "") + ("LAST " if i == len(parts) - 1 else
                                             "NEXT " if i else "")
        yield "X-LINK2STATE %sCHUNK=%s" % (kw, base64.b64encode(p).decode())


def send(c, data):
    """DIGEST, then data as a transfer: the reply to its last chunk (or the
    first reply that is not a chunk's 250)."""
    r = cmd(c, "X-LINK2STATE DIGEST=" + ZERO)
    if not r.endswith(" differs"):
        return r
    for line in chunk_lines(data):
        r = cmd(c, line)
        if not r.startswith("250 2.0.0 X-LINK2STATE chunk "):
            break
    return r


def transfer(*entries, summary=()):
    """A LinkTransfer (proto/mailmesh.proto): summary 1, entries 2."""
    return L.encode([[1, s] for s in summary] + [[2, e] for e in entries])


def counts(r):
    """(taken, dropped) from "250 2.0.0 X-LINK2STATE T taken, D dropped, S sent"."""
    m = re.match(r"250 2\.0\.0 X-LINK2STATE (\d+) taken, (\d+) dropped, \d+ sent$", r)
    return (int(m.group(1)), int(m.group(2))) if m else None


def chunks_in(lines):
    """The transfer a reply's 250-X-LINK2STATE ... CHUNK= lines carry."""
    out = b""
    for line in lines:
        m = re.match(r"X-LINK2STATE (?:FIRST |NEXT |LAST )*CHUNK=(\S+)$", line)
        if m:
            out += base64.b64decode(m.group(1))
    return out


# --- forging -------------------------------------------------------------------------


def forge(entry, version, by=None, keep=False, name=None):
    """entry (a GroupEntry's bytes) at version, its content re-encoded as
    protobuf-c packs it -- fields in number order, proto3 zeros left out,
    lists as they came (sorted by name) -- so that the content a receiver
    checks is the content signed here. Signed by `by` = (key, pem) with
    openssl pkeyutl (Ed25519), or carrying its old signature and signer
    (keep), or neither (unsigned). name renames the group."""
    fields = [list(x) for x in L.decode(entry)]
    old = {f: v for f, v in fields if f in (7, 8)}
    content = [x for x in fields if x[0] not in (7, 8)]
    for x in content:
        if x[0] == 3:
            x[1] = L.encode([[i + 1, n] for i, n in enumerate(version) if n])
        if x[0] == 1 and name:
            x[1] = name.encode()
    data = L.encode(content)
    if keep:
        return data + L.encode([[7, old[7]], [8, old[8]]])
    if by is None:
        return data
    with open(FORGE + "/content.bin", "wb") as f:
        f.write(data)
    openssl("pkeyutl", "-sign", "-rawin", "-inkey", by[0], "-in", FORGE + "/content.bin",
            "-out", FORGE + "/sig.bin")
    openssl("x509", "-in", by[1], "-outform", "DER", "-out", FORGE + "/signer.der")
    with open(FORGE + "/sig.bin", "rb") as f:
        sig = f.read()
    with open(FORGE + "/signer.der", "rb") as f:
        der = f.read()
    return data + L.encode([[7, sig], [8, der]])


def newer(v):
    """A version above v: the major bumped."""
    return (v[0], v[1] + 1, 0, 0)


# --- the mesh comes up -----------------------------------------------------------------
# A1 and B1 hold one digest with A's and B's entries signed by their masters:
# the entries crossed the connectors over X-LINK2STATE.

V0 = wait_for(converged, 90, 0.2)
check(V0 is not None, "A1 and B1 hold one digest, A's and B's entries signed by A-RGM and "
      "B-RGM (%s)" % (V0 or (view(A1), view(B1)),))
if V0 is None:
    R.done()
D0, VER0 = V0[0], {g: v for g, (v, _) in V0[1].items()}


def unchanged(what, want=None, addr=A1):
    """A1's digest and every group's version as they were (want: a view)."""
    want = want or V
    got = view(addr)
    check(got == want, "%s: nothing merged, the digest and versions unchanged (%s)"
          % (what, "ok" if got == want else "got %s, want %s" % (got, want)))


V = V0

# --- 1. not authenticated ------------------------------------------------------------
# Length first (500 5.5.2), then authentication (530 5.7.0, whatever the
# verb carries): nothing from such a session comes near the table.
LONG = "X-LINK2STATE FIRST CHUNK=" + "A" * 1200
IN_LIMIT = "X-LINK2STATE FIRST CHUNK=" + "QUJD" * 240  # 987 octets with CRLF


def unauthenticated(what, c):
    ehlo = c.ehlo_resp.decode() if c.ehlo_resp else ""
    check("X-LINK2STATE" in ehlo, "%s: EHLO advertises X-LINK2STATE" % what)
    # (mutation: smtp_server.c xlink2state without its authentication test
    # -- 250 ... equal: A1's digest confirmed to anyone, and the chunks
    # after it 503 instead of 530)
    r = cmd(c, "X-LINK2STATE DIGEST=" + D0)
    check(r.startswith("530 5.7.0"), "%s: DIGEST=<A1's digest> gets 530 5.7.0 (%s)" % (what, r))
    r = cmd(c, "X-LINK2STATE LAST CHUNK=AAAA")
    check(r.startswith("530 5.7.0"), "%s: LAST CHUNK=AAAA gets 530 5.7.0 (%s)" % (what, r))
    r = cmd(c, IN_LIMIT)
    check(r.startswith("530 5.7.0"), "%s: a FIRST chunk of 987 octets gets 530 5.7.0 (%s)"
          % (what, r))
    # (mutations: MM_XLINK_LINE_MAX 2048 -- 530, the length no longer
    # first; smtp_server.c mm_smtpd_feed without its "len > max" test -- A1
    # dies of this line, a stack buffer overrun before any authentication)
    r = cmd(c, LONG)
    check(r.startswith("500 5.5.2"), "%s: FIRST CHUNK= and 1,200 octets gets 500 5.5.2 (%s)"
          % (what, r))
    r = cmd(c, "NOOP")
    check(r.startswith("250"), "%s: the session goes on (NOOP: %s)" % (what, r))
    quit_(c)


unauthenticated("plain", smtp(tls=False))
unauthenticated("TLS, no client certificate", smtp())
# a master's certificate is the organization's, but names no server: B-RGM's,
# though a server of C has that name
# (mutation: server.c org_server_cert without its kind test -- 235)
c = smtp(cert("B-RGM"))
code, _ = c.docmd("AUTH", "EXTERNAL =")
check(code != 235, "TLS with the master B-RGM's certificate: AUTH EXTERNAL refused (%d)" % code)
unauthenticated("TLS with a master's certificate", c)
# a user's password is no server's certificate
c = smtp()
code, _ = c.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice@lab.test\0alice-secret").decode())
check(code == 235, "TLS, AUTH PLAIN as alice: 235 (%d)" % code)
# (mutation: smtp_server.c xlink2state not asking for AUTH EXTERNAL -- 250)
unauthenticated("TLS and AUTH PLAIN as a user", c)
unchanged("the unauthenticated sessions")

# --- 2. authenticated, hostile: the protocol ----------------------------------------------
# C7's certificate, AUTH EXTERNAL: every 5xx drops the partial transfer,
# merges nothing, and the session goes on.
c = server("C7")
# MS05-021: a chunk with no FIRST before it, before DIGEST and after
# (mutation: xlink.c mm_xlink_srv_command without its "DIGEST first" test)
r = cmd(c, "X-LINK2STATE FIRST CHUNK=QUJD")
check(r.startswith("503 5.5.1"), "a chunk before DIGEST: 503 5.5.1 (%s)" % r)
r = cmd(c, "X-LINK2STATE DIGEST=" + ZERO)
check(r.startswith("250 2.0.0 X-LINK2STATE DIGEST=%s differs" % D0) and len(c.lines) >= 2,
      "DIGEST=<zeros>: 250 ... differs, after the server's summary (%s)" % r)
# (mutation: xlink.c mm_xlink_asm_feed without the NO_FIRST test)
r = cmd(c, "X-LINK2STATE NEXT CHUNK=QUJD")
check(r.startswith("503 5.5.1"), "NEXT CHUNK= with no FIRST: 503 5.5.1 (%s)" % r)
cmd(c, "X-LINK2STATE DIGEST=" + ZERO)
r = cmd(c, "X-LINK2STATE LAST CHUNK=QUJD")
check(r.startswith("503 5.5.1"), "LAST CHUNK= with no FIRST: 503 5.5.1 (%s)" % r)
cmd(c, "X-LINK2STATE DIGEST=" + ZERO)
r1 = cmd(c, "X-LINK2STATE FIRST CHUNK=QUJD")
# (mutation: mm_xlink_asm_feed without the FIRST_AGAIN test)
r2 = cmd(c, "X-LINK2STATE FIRST CHUNK=QUJD")
check(r1 == "250 2.0.0 X-LINK2STATE chunk 1, 3 octets" and r2.startswith("503 5.5.1"),
      "FIRST, then FIRST again: 250 chunk 1, then 503 5.5.1 (%s; %s)" % (r1, r2))
# the partial transfer went with the 503: a LAST now has no FIRST
r = cmd(c, "X-LINK2STATE LAST CHUNK=QUJD")
check(r.startswith("503 5.5.1"), "... and a LAST after it: 503 5.5.1, nothing kept (%s)" % r)

# line length: 1,024 octets with CRLF is a line, 1,025 is not. The exact
# 1,024: a transfer of 744 octets, one summary entry of a 738-letter group.
fill = transfer(summary=[L.encode([[1, "Z" * 738]])])
line = "X-LINK2STATE FIRST LAST CHUNK=" + base64.b64encode(fill).decode()
cmd(c, "X-LINK2STATE DIGEST=" + ZERO)
r = cmd(c, line)
# (mutation: smtp_server.c mm_smtpd_feed "len > max" as "len >= max")
check(len(line) + 2 == 1024 and counts(r) == (0, 0),
      "a chunk line of 1,024 octets, CRLF included, is taken: 0 taken, 0 dropped (%s)" % r)
cmd(c, "X-LINK2STATE DIGEST=" + ZERO)
r = cmd(c, line + "=")
check(r.startswith("500 5.5.2"), "... one octet more: 500 5.5.2 (%s)" % r)
r = cmd(c, "X-LINK2STATE FIRST CHUNK=" + "QUJD" * 1243 + "Q")
check(r.startswith("500 5.5.2"), "a line of 5,000 octets: 500 5.5.2 (%s)" % r)
r = cmd(c, "NOOP")
check(r.startswith("250"), "... and the next command is read as one: NOOP 250 (%s)" % r)
# 40,000 octets: more than the server reads at once, so the line is
# refused before its end comes, and the rest is dropped as it comes
# (mutation: smtp_server.c mm_smtpd_feed not setting s->discarding -- the
# rest of the line gets 500s of its own, and every reply after is a step
# behind: NOOP's is "500 5.5.2 Line too long")
r = cmd(c, "X-LINK2STATE FIRST CHUNK=" + "QUJD" * 9993 + "Q")
check(r.startswith("500 5.5.2"), "a line of 40,000 octets: 500 5.5.2 (%s)" % r)
r = cmd(c, "NOOP")
check(r.startswith("250"), "... and the next command is read as one: NOOP 250 (%s)" % r)

# (mutation: mm_xlink_asm_feed taking what mm_base64_decode refused as an
# empty chunk -- 250 chunk 1)
cmd(c, "X-LINK2STATE DIGEST=" + ZERO)
r = cmd(c, "X-LINK2STATE FIRST CHUNK=QU*D")
check(r.startswith("501 5.5.2"), "garbage base64: 501 5.5.2 (%s)" % r)
cmd(c, "X-LINK2STATE DIGEST=" + ZERO)
r = cmd(c, "X-LINK2STATE FIRST CHUNK=QUJ")
check(r.startswith("501 5.5.2"), "base64 of a length not a multiple of 4: 501 5.5.2 (%s)" % r)
# valid base64 that is no transfer: bytes protobuf-c refuses, and an entry
# without a group name, which it takes and mm_xlink_decode refuses
# (mutation: mm_xlink_decode without the test of the entries' names -- 250
# 0 taken, 1 dropped)
r = send(c, b"\x0a\xff\xff\xff")
check(r.startswith("554 5.6.0"), "a transfer protobuf-c does not decode: 554 5.6.0 (%s)" % r)
r = send(c, transfer(L.encode([[2, "X-RGM"], [3, L.encode([[1, 9], [2, 9]])]])))
check(r.startswith("554 5.6.0"), "a transfer with a nameless entry: 554 5.6.0 (%s)" % r)
r = cmd(c, "X-LINK2STATE DIGEST=" + "g" * 64)
check(r.startswith("501 5.5.4"), "DIGEST= of no hex: 501 5.5.4 (%s)" % r)
cmd(c, "X-LINK2STATE DIGEST=" + ZERO)
r = cmd(c, "X-LINK2STATE MIDDLE CHUNK=QUJD")
check(r.startswith("501 5.5.4"), "MIDDLE CHUNK=: 501 5.5.4 (%s)" % r)
# state: not inside a mail transaction
# (mutation: smtp_server.c xlink2state without its MM_SMTPD_MAIL test)
r = cmd(c, "MAIL FROM:<c7@lab.test>")
r2 = cmd(c, "X-LINK2STATE DIGEST=" + ZERO)
check(r.startswith("250") and r2.startswith("503 5.5.1"),
      "DIGEST inside a mail transaction: 503 5.5.1 (%s; %s)" % (r, r2))
cmd(c, "RSET")
# after all that (15 errors), the exchange still works
r = cmd(c, "X-LINK2STATE DIGEST=" + D0)
check(r == "250 2.0.0 X-LINK2STATE DIGEST=%s equal" % D0,
      "after 15 errors, the session goes on: DIGEST=<A1's digest> 250 ... equal (%s)" % r)
quit_(c)
unchanged("the out-of-order, long, bad and undecodable chunks")

# the session's error count ends a session that keeps failing
# (mutation: smtp_server.c xlink2state not counting MM_XLINK_ERROR)
c = server("C7")
c.send("".join("X-LINK2STATE NEXT CHUNK=QUJD\r\n" for _ in range(25)))
got = [reply(c) for _ in range(21)]
n503 = sum(1 for r in got if r.startswith("503 5.5.1"))
check(n503 == 20 and got[20].startswith("421 4.7.0") and closed(c),
      "25 NEXT chunks without FIRST: twenty 503, then 421 and the session closed (%d, %s)"
      % (n503, got[20]))

# --- 3. entries: what A1 holds, and a positive control ------------------------------------
# A's and B's signed entries, as A1 sends them to a peer that holds
# nothing (a summary of a group no one has); never C's baseline.
c = server("C6")
r = send(c, transfer(summary=[L.encode([[1, "Zz"]])]))
got = L.get_all(L.decode(chunks_in(c.lines)), 2)
ENTRY = {L.get(L.decode(e), 1).decode(): e for e in got}
check(counts(r) == (0, 0) and sorted(ENTRY) == ["A", "B"],
      "a peer that lacks everything gets A's and B's entries, signed, and no baseline (%s, %s)"
      % (r, sorted(ENTRY)))
quit_(c)
# C's baseline (incarnation 0, unsigned) from A1's SPOOL/table: the content
# forged entries of group C start from
with open(os.path.join(W, "a1", "table"), "rb") as f:
    C_BASE = L.table_groups(f.read())["C"]
C_BASE = L.encode(C_BASE)

# a baseline of C (unsigned, incarnation 0) with a higher major is dropped,
# no error: baselines never travel
# (mutation: member.c judge without its incarnation 0 test -- 421, "not signed")
c = server("C9")
r = send(c, transfer(forge(C_BASE, (0, 9, 0, 0))))
check(counts(r) == (0, 1), "C's baseline at (0, 9, 0, 0): 0 taken, 1 dropped (%s)" % r)
quit_(c)
unchanged("a baseline sent")

# The positive control: C's entry at a version newer than A1's, signed by
# C-RGM with the key meshctl pki issued it. Taken: so the content this test
# signs is the content A1 checks, and each refusal below is for its reason.
C_V = (7, 1, 0, 0)
c = server("C8")
r = send(c, transfer(forge(C_BASE, C_V, by=cert("C-RGM"))))
V = view(A1)
check(counts(r) == (1, 0) and V[1]["C"] == (C_V, "C-RGM") and V[0] != D0,
      "C's entry at %s signed by C-RGM: 1 taken; A1 holds it, signed_by C-RGM (%s, %s)"
      % (C_V, r, V[1].get("C")))
quit_(c)
# and it floods on to B1 (A1's connector to it)
vb = wait_for(lambda: view(B1) if view(B1) == V else None, 60, 0.2)
check(vb is not None, "... and B1 takes it from A1: one digest again (%s)" % (view(B1),))
VB = view(B1)

# --- 4. entries that fail a check: 421, closed, 454 for 60 s ---------------------------------


def refused(what, peer, entry):
    """entry sent by peer: 421 4.7.0 and the session closed, the refusal
    logged, nothing merged."""
    c = server(peer)
    r = send(c, transfer(entry))
    check(r.startswith("421 4.7.0") and closed(c),
          "%s: 421 4.7.0 and the session closed (%s)" % (what, r))
    # (mutation: xlink.c transfer without its slog of the refusal)
    line = 'xlink: from "%s": entry of group "%s"' % (peer, L.get(L.decode(entry), 1).decode())
    check(wait_for(lambda: R.log_has(A1_LOG, line), 30), "%s: A1 logs %s..." % (what, line))
    unchanged(what)


B_V = VER0["B"]
# (a) B's entry, edited (a newer version), with B-RGM's signature of the
# old content (mutation: entrysig.c verify taking any signature -- 1 taken)
T_PENALTY = time.monotonic()
refused("(a) B's entry at a newer version, B-RGM's old signature", "C1",
        forge(ENTRY["B"], newer(B_V), keep=True))
# C1 is not heard for 60 s (mutation: xlink_run.c xlinks_serve not
# penalizing -- 250 ... differs); C2 is
c = server("C1")
r = cmd(c, "X-LINK2STATE DIGEST=" + ZERO)
m = re.search(r"not heard for (\d+) ms more", r)
check(r.startswith("454 4.7.0") and m and 0 < int(m.group(1)) <= 60000,
      "C1 again: 454 4.7.0, not heard for up to 60 s more (%s)" % r)
quit_(c)
c = server("C2")
r = cmd(c, "X-LINK2STATE DIGEST=" + V[0])
check(r.endswith(" equal"), "C2 meanwhile: 250 ... equal (%s)" % r)
quit_(c)

# (c) B's entry, newer, signed by the server B-RGM (an Ed25519 key): the
# name is a candidate of B, the signature holds, the kind is wrong
# (mutation: entrysig.c verify without the kind test)
refused("(c) B's entry signed with the server B-RGM's certificate", "C3",
        forge(ENTRY["B"], newer(B_V), by=SRV_BRGM))


def disowned(what, peer, entry):
    """entry sent by peer, signed by a master this node does not own for
    the entry's group (another group's, or revoked): dropped and logged,
    nothing merged -- but no 421 and no penalty, since a peer whose
    directory or CRL differs relays such an entry in good faith."""
    c = server(peer)
    r = send(c, transfer(entry))
    check(counts(r) == (0, 1), "%s: 0 taken, 1 dropped (%s)" % (what, r))
    r = cmd(c, "X-LINK2STATE DIGEST=" + V[0])
    check(r.endswith(" equal"), "%s: the session goes on, unpenalized (%s)" % (what, r))
    quit_(c)
    line = 'member: from "%s": entry of group "%s"' % (peer, L.get(L.decode(entry), 1).decode())
    check(wait_for(lambda: R.log_has(A1_LOG, line), 30), "%s: A1 logs %s..." % (what, line))
    unchanged(what)


# (b) B's entry, newer, signed by C-RGM: a master of the organization, not
# of B (mutation: entrysig.c mm_entry_check without the candidacy loop --
# 1 taken)
disowned("(b) B's entry signed by C-RGM, a master of another group", "C2",
         forge(ENTRY["B"], newer(B_V), by=cert("C-RGM")))

# (d) C-RGM2, a candidate of C, revoked: crl.pem into A1's --tls and SIGHUP
r = subprocess.run([meshctl, "pki", "revoke", "--dir", PKI.ca, "C-RGM2"], capture_output=True,
                   text=True)
check(r.returncode == 0, "meshctl pki revoke C-RGM2 (%s)" % r.stderr.strip())
shutil.copy(os.path.join(PKI.ca, "crl.pem"), A1_TLS)


def reloads():
    with open(A1_LOG, errors="replace") as f:
        return f.read().count("reload: directory")


n = reloads()
a1.send_signal(signal.SIGHUP)
check(wait_for(lambda: reloads() > n, 60), "A1 reloads on SIGHUP")
unchanged("SIGHUP with the same directory")
# (mutation: entrysig.c verify without X509_V_FLAG_CRL_CHECK; and
# config.c node_reload not calling routing_trust_load)
disowned("(d) C's entry signed by C-RGM2, revoked", "C4",
        forge(C_BASE, newer(C_V), by=cert("C-RGM2")))
# (e) C's entry, newer, not signed (mutation: entrysig.c mm_entry_check
# taking an unsigned entry as OK)
refused("(e) C's entry at a newer version, unsigned", "C5", forge(C_BASE, newer(C_V)))

# --- 5. entries dropped without an error ----------------------------------------------------


def dropped(what, peer, entries, n):
    c = server(peer)
    r = send(c, transfer(*entries))
    check(counts(r) == (0, n), "%s: 0 taken, %d dropped, no 421 (%s)" % (what, n, r))
    r = cmd(c, "X-LINK2STATE DIGEST=" + V[0])
    check(r.endswith(" equal"), "%s: the session goes on, unpenalized (%s)" % (what, r))
    quit_(c)
    unchanged(what)


# older and equal versions go before any signature is looked at (mutation:
# member.c judge without the version test -- 1 taken for the equal one, or
# 421 for the older, its signature no longer holding)
dropped("B's entry as A1 holds it, and B's at an older version", "C10",
        [ENTRY["B"], forge(ENTRY["B"], (B_V[0] - 1, B_V[1], 0, 0), keep=True)], 2)
# (f) the receiver's own group, newer and signed by its master: settled
# inside the group, over 691 (mutation: member.c judge taking the node's
# own group -- 1 taken)
dropped("(f) A's entry, newer, signed by A-RGM", "C11",
        [forge(ENTRY["A"], newer(VER0["A"]), by=cert("A-RGM"))], 1)
# a group A1's directory does not have (mutation: member.c judge without its
# directory test -- 421, no candidate of the group)
dropped("group Zz (not in the directory), signed by C-RGM", "C12",
        [forge(C_BASE, newer(C_V), by=cert("C-RGM"), name="Zz")], 1)

# --- 6. 10 MB of chunks ------------------------------------------------------------------------
# FIRST and NEXT chunks of 735 octets, pipelined while far from the limit:
# every chunk up to 8 MiB decoded gets its 250, the first over it 552 5.3.4;
# the rest of the 10 MB as a new transfer starts at chunk 1 (nothing of the
# old one kept), and the session goes on.
# (mutation: xlink.c mm_xlink_asm_feed without its TOO_BIG tests -- no 552)
LIMIT, TOTAL = 8 << 20, 10 * 1000 * 1000
LINE = "X-LINK2STATE %sCHUNK=" + base64.b64encode(os.urandom(CHUNK_RAW)).decode() + "\r\n"


def stream(c, chunks, near=None):
    """chunks FIRST and NEXT lines, pipelined 256 at a time (one at a time
    from `near` octets on): (the last "chunk N, M octets" reply's (N, M),
    the first other reply or None, the octets sent)."""
    n, last, other = 0, (0, 0), None
    while n < chunks and other is None:
        batch = 1 if near is not None and (n + 300) * CHUNK_RAW > near else 256
        batch = min(batch, chunks - n)
        try:
            c.send("".join(LINE % ("FIRST " if n + i == 0 else "NEXT ") for i in range(batch)))
        except (smtplib.SMTPServerDisconnected, OSError):
            return last, "(closed)", n * CHUNK_RAW
        n += batch
        for _ in range(batch):
            r = reply(c)
            m = re.match(r"250 2\.0\.0 X-LINK2STATE chunk (\d+), (\d+) octets$", r)
            if m is None:
                other = r
                break
            last = (int(m.group(1)), int(m.group(2)))
    return last, other, n * CHUNK_RAW


c = server("C13")
t0 = time.monotonic()
cmd(c, "X-LINK2STATE DIGEST=" + ZERO)
(k, octets), big, sent = stream(c, TOTAL // CHUNK_RAW + 1, near=LIMIT)
check(big is not None and big.startswith("552 5.3.4") and octets <= LIMIT < octets + CHUNK_RAW,
      "chunks up to %d octets (chunk %d) get 250, the next one 552 5.3.4 (%s)"
      % (octets, k, big))
# the exchange is over with the 552: DIGEST again, and a new transfer
r = cmd(c, "X-LINK2STATE DIGEST=" + ZERO)
rest = (TOTAL - sent) // CHUNK_RAW + 1
(k, octets), other, more = stream(c, rest)
check(r.endswith(" differs") and other is None and (k, octets) == (rest, rest * CHUNK_RAW),
      "then the rest of 10 MB (%d octets) as a new transfer: its chunks counted from 1 "
      "(chunk %d, %d octets; %s)" % (more, k, octets, other))
r = cmd(c, "X-LINK2STATE DIGEST=" + V[0])
check(r.endswith(" equal"), "after %d octets of chunks, DIGEST: 250 ... equal (%s)"
      % (sent + more, r))
quit_(c)
print("%.1f MB of chunks in %.1f s" % ((sent + more) / 1e6, time.monotonic() - t0))
unchanged("10 MB of chunks")

# --- 7. A1 still carries mail ---------------------------------------------------------------
c = smtplib.SMTP(*A1_SMTP, timeout=120)
try:
    refused_rcpts = c.sendmail("carol@example.test", ["alice@lab.test", "bob@lab.test"],
                               "Subject: after the hostile peers\r\n\r\nstill here\r\n")
    ok = not refused_rcpts
except smtplib.SMTPException as e:
    ok = False
    print(e)
quit_(c)
check(ok, "A1 takes a message for alice (local) and bob (B1's) with 250")
check(wait_for(lambda: maildir(os.path.join(W, "a1"), "alice@lab.test"), 60),
      "... alice's copy is in A1's Maildir")
check(wait_for(lambda: maildir(os.path.join(W, "b1"), "bob@lab.test"), 60),
      "... bob's crossed A-B to B1's Maildir")

# nothing refused reached B1 either (A1 floods what it takes; anti-entropy
# runs every second)
unchanged("at the end, B1", VB, B1)

# --- 8. the penalty ends ----------------------------------------------------------------------


def heard():
    c = server("C1")
    r = cmd(c, "X-LINK2STATE DIGEST=" + V[0])
    quit_(c)
    return r.endswith(" equal")


# not before 60 s, and soon after (or soon after this starts asking, on a
# machine slow enough to get here late)
# (mutations: xlink_run.c penalize for xlink_penalty_ms / 2 -- heard at
# once; for xlink_penalty_ms * 2 -- 454 until 120 s)
t_ask = time.monotonic()
ok = wait_for(heard, 150, 1)
t_heard = time.monotonic()
check(ok and t_heard - T_PENALTY >= 59.9 and t_heard - max(T_PENALTY + 60, t_ask) <= 30,
      "C1 is heard again 60 s after its refused entry (%.1f s; asked from %.1f s)"
      % (t_heard - T_PENALTY, t_ask - T_PENALTY))

R.done()
