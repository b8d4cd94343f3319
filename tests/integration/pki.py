#!/usr/bin/env python3
"""meshctl pki, checked with the openssl command-line tool, and its
certificates at work: two meshnodes relaying over STARTTLS with verified
certificates, the daemons' refusal of a --tls directory holding the CA's
key (exit 78), and node/tls.c's routing contexts (mutual TLS 1.3) and
identity checks through tests/support/tls_probe against openssl s_client
and s_server.

Each check names, in "(mutation: ...)", the change to the code it was seen
to fail on.

usage: pki.py MESHNODE MESHCTL MKORG TLS_PROBE
"""
import hashlib
import os
import shutil
import smtplib
import socket
import ssl
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodelib import Raw, check, done, maildir, node, start, wait_for, workdir  # noqa: E402

meshnode, meshctl, mkorg, probe = sys.argv[1:5]
W = workdir("pki")
CA = os.path.join(W, "ca")  # where pki init puts the CA, and issue the rest
N1, N2 = ("127.0.23.1", 2525), ("127.0.23.2", 2525)
ldif = os.path.join(W, "lab.ldif")
subprocess.run([sys.executable, mkorg, ldif, "--bind", "%s:%d" % N1, "--second", "%s:%d" % N2,
                "--smarthost", "127.0.23.3:25250"], check=True)


def ctl(*args, directory=ldif):
    pre = ["--directory", directory if ":" in directory else "ldif:" + directory] \
        if directory else []
    return subprocess.run([meshctl] + pre + list(args), capture_output=True, text=True)


def ossl(*args, **kw):
    return subprocess.run(["openssl"] + list(args), capture_output=True, text=True, **kw)


def text(pem):
    return ossl("x509", "-in", pem, "-noout", "-text").stdout


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def serial(pem):
    return int(ossl("x509", "-in", pem, "-noout", "-serial").stdout.strip().split("=")[1], 16)


def listing(d):
    return sorted(f for f in os.listdir(d))


# --- pki init ------------------------------------------------------------

r = ctl("pki", "init", "--dir", CA, "--org", "Lab", directory=None)
check(r.returncode == 0 and listing(CA) == ["ca.key", "ca.pem"],
      "pki init: ca.pem and ca.key, no temporary file left (rc %d: %s) (mutation: unstage() "
      "keeping the temporary name)" % (r.returncode, r.stderr))
check(mode(CA + "/ca.key") == 0o600,
      "ca.key mode 0600 (mutation: stage() with 0644 for the key)")
t = text(CA + "/ca.pem")
check("Subject: O = Lab, CN = Lab mailmesh CA" in t and
      "Issuer: O = Lab, CN = Lab mailmesh CA" in t,
      "CA subject O=Lab, CN=\"Lab mailmesh CA\", self-issued (mutation: CN without the "
      "\" mailmesh CA\")")
check("X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0" in t,
      "CA: basicConstraints critical CA:TRUE, pathlen:0 (mutation: not critical)")
check("X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign" in t,
      "CA: keyUsage critical keyCertSign, cRLSign (mutation: cRLSign dropped)")
check("NIST CURVE: P-256" in t and "ecdsa-with-SHA256" in t, "CA: P-256 key, ECDSA-SHA256 (mutation: P-384 in new_key())")
r = ossl("verify", "-x509_strict", "-check_ss_sig", "-CAfile", CA + "/ca.pem", CA + "/ca.pem")
check(r.returncode == 0, "openssl verify -x509_strict -check_ss_sig: the CA verifies itself (%s) (mutation: the CA "
      "signed with another key than its own)" % r.stdout.strip())
check(ossl("x509", "-in", CA + "/ca.pem", "-noout", "-checkend", str(3640 * 86400)).returncode == 0
      and ossl("x509", "-in", CA + "/ca.pem", "-noout", "-checkend",
               str(3660 * 86400)).returncode == 1,
      "CA valid ten years (mutation: CA_DAYS 365)")
other = os.path.join(W, "other-ca")
r = ctl("pki", "init", "--dir", other, "--org", "Lab", directory=None)
s1, s2 = serial(CA + "/ca.pem"), serial(other + "/ca.pem")
check(r.returncode == 0 and s1 != s2 and s1 > 2 ** 64 and s2 > 2 ** 64,
      "random 128-bit serials (mutation: random_serial() filling r with zeros and 1)")

before = digest(CA + "/ca.key")
r = ctl("pki", "init", "--dir", CA, "--org", "Lab", directory=None)
check(r.returncode == 73 and "ca.key exists" in r.stderr and digest(CA + "/ca.key") == before,
      "pki init over an existing CA: 73, ca.key untouched (%d: %s) (mutation: "
      "must_not_exist() returning EX_OK and commit() renaming instead of linking)"
      % (r.returncode, r.stderr.strip()))
half = os.path.join(W, "half")
os.mkdir(half)
shutil.copy(CA + "/ca.pem", half)
r = ctl("pki", "init", "--dir", half, "--org", "Lab", directory=None)
check(r.returncode == 73 and listing(half) == ["ca.pem"],
      "pki init with only a ca.pem there: 73, nothing written (mutation: init() without the "
      "ca.pem must_not_exist() and write_pair() not undoing ca.key)")
r = ctl("pki", "init", "--dir", os.path.join(W, "long"), "--org", "x" * 53, directory=None)
check(r.returncode == 64, "pki init --org longer than 52 characters: 64 (mutation: the CN "
      "added as V_ASN1_UTF8STRING, which OpenSSL does not bound)")
r = ctl("pki", "init", "--dir", os.path.join(W, "x"), directory=None)
check(r.returncode == 64, "pki init without --org: 64 (mutation: init() not asking for it)")

# --- pki issue -----------------------------------------------------------

r = ctl("pki", "issue", "--dir", CA, "N1", "N2", "LAB-RGM", "admin", "--admin", "alice")
check(r.returncode == 0, "pki issue N1 N2 LAB-RGM admin --admin alice: 0 (%s) (mutation: "
      "resolve() not knowing the name admin)" % r.stderr)
want = {"N1": "server", "N2": "server", "LAB-RGM": "master", "admin": "admin", "alice": "admin"}
for name, kind in want.items():
    pem, key = "%s/%s.pem" % (CA, name), "%s/%s.key" % (CA, name)
    if not os.path.exists(pem):
        check(False, "%s: issued" % name)
        continue
    t = text(pem)
    check(mode(key) == 0o600, "%s.key mode 0600 (mutation: as for ca.key)" % name)
    r = ossl("verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", CA + "/ca.pem", pem)
    r2 = ossl("verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", CA + "/ca.pem", pem)
    check(r.returncode == 0 and r2.returncode == 0,
          "%s: openssl verify -x509_strict against ca.pem, as TLS server and client "
          "(mutation: X509_sign() with the new key instead of the CA's)" % name)
    check("Subject: O = Lab, OU = %s, CN = %s\n" % (kind, name) in t,
          "%s: subject O=Lab, OU=%s, CN=%s (mutation: OU from the wrong kind)" % (name, kind, name))
    dns = ", DNS:%s.lab.test" % name.lower() if kind == "server" else ""
    check("X509v3 Subject Alternative Name: \n                URI:mailmesh:%s:%s%s\n"
          % (kind, name, dns) in t,
          "%s: subjectAltName URI:mailmesh:%s:%s%s (mutation: add_san() skipping the "
          "fqdns; mm_cert_identity_uri() writing server for every kind)"
          % (name, kind, name, dns))
    check("X509v3 Extended Key Usage: \n                TLS Web Server Authentication, "
          "TLS Web Client Authentication" in t,
          "%s: extendedKeyUsage serverAuth, clientAuth (mutation: clientAuth dropped)" % name)
    check("X509v3 Key Usage: critical\n                Digital Signature\n" in t and
          "X509v3 Basic Constraints: critical\n                CA:FALSE" in t,
          "%s: keyUsage critical digitalSignature, basicConstraints critical CA:FALSE "
          "(mutation: basicConstraints not critical)" % name)
    pub_c = ossl("x509", "-in", pem, "-noout", "-pubkey").stdout
    pub_k = ossl("pkey", "-in", key, "-pubout").stdout
    check(pub_c and pub_c == pub_k, "%s: NAME.key is the key of NAME.pem (mutation: "
          "write_pair() given the CA's key)" % name)
    check(ossl("x509", "-in", pem, "-noout", "-checkend", str(720 * 86400)).returncode == 0 and
          ossl("x509", "-in", pem, "-noout", "-checkend", str(740 * 86400)).returncode == 1,
          "%s: valid two years (mutation: LEAF_DAYS 3650)" % name)
check(len({serial("%s/%s.pem" % (CA, n)) for n in want}) == len(want),
      "every certificate has its own serial (mutation: as for the CA's serial)")

before = digest(CA + "/N1.key")
r = ctl("pki", "issue", "--dir", CA, "--admin", "carol", "N1")
check(r.returncode == 73 and "N1.key exists" in r.stderr and digest(CA + "/N1.key") == before
      and not os.path.exists(CA + "/carol.key"),
      "issue N1 again: 73, N1.key untouched, and nothing written for carol (%d: %s) "
      "(mutation: issue() without its must_not_exist() loop)" % (r.returncode, r.stderr.strip()))

files = listing(CA)
r = ctl("pki", "issue", "--dir", CA, "--admin", "bob", "N9", "N2x")
check(r.returncode == 65 and "N9: no server or master" in r.stderr and "N2x" in r.stderr,
      "issue N9 N2x (not in the directory): 65 naming each (%d: %s) (mutation: resolve() "
      "skipping an unknown name without an error)" % (r.returncode, r.stderr.strip()))
check(listing(CA) == files, "... and nothing written, not even bob's (mutation: issue() "
      "issuing what resolve() accepted before looking at its status)")
r = ctl("pki", "issue", "--dir", CA, "--admin", "ca", "--admin", "a/b")
check(r.returncode == 65 and listing(CA) == files,
      "--admin ca, --admin a/b (not certificate names): 65, nothing written (mutation: "
      "resolve() without its mm_cert_name_ok() loop)")
r = ctl("pki", "issue", "--dir", CA, "--admin", "dup", "--admin", "dup")
check(r.returncode == 64 and listing(CA) == files, "one name twice in one run: 64, nothing "
      "written (mutation: distinct() returning EX_OK)")
r = ctl("pki", "issue", "--dir", CA, "--admin", "dave", directory=None)
check(r.returncode == 0 and os.path.exists(CA + "/dave.pem"),
      "--admin NAME alone needs no directory (%s) (mutation: issue() always asking for "
      "--directory)" % r.stderr.strip())
r = ctl("pki", "issue", "--dir", CA, "N2", directory=None)
check(r.returncode == 64, "a server name without --directory: 64 (mutation: issue() not "
      "asking for --directory)")

# names unique per kind: a master N1 in a second group, and a server named admin
amb = os.path.join(W, "amb.ldif")
with open(ldif) as f, open(amb, "w") as g:
    g.write(f.read() + "\ndn: cn=Two,o=Lab\nobjectClass: mmRoutingGroup\ncn: Two\n\n"
            "dn: cn=N1,cn=Two,o=Lab\nobjectClass: mmMaster\ncn: N1\n"
            "mmRoutingAddress: 127.0.23.9:6910\nmmPriority: 1\n\n"
            "dn: cn=admin,cn=Two,o=Lab\nobjectClass: mmServer\ncn: admin\n"
            "mmRoutingAddress: 127.0.23.9:6911\n")
ca2 = os.path.join(W, "ca2")
os.mkdir(ca2, 0o700)
for f in ("ca.pem", "ca.key"):
    shutil.copy2(CA + "/" + f, ca2)
r = ctl("pki", "issue", "--dir", ca2, "N1", directory=amb)
check(r.returncode == 65 and "--server N1 or --master N1" in r.stderr and
      listing(ca2) == ["ca.key", "ca.pem"],
      "N1, a server and a master: 65, says --server/--master, nothing written (%s) "
      "(mutation: resolve() taking the server when kinds > 1)" % r.stderr.strip())
r = ctl("pki", "issue", "--dir", ca2, "admin", directory=amb)
check(r.returncode == 65 and "--server admin or --admin admin" in r.stderr,
      "admin, also a server's name: 65 (%s) (mutation: as for N1)" % r.stderr.strip())
r = ctl("pki", "issue", "--dir", ca2, "--master", "N1", "--server", "admin", directory=amb)
t1, t2 = text(ca2 + "/N1.pem"), text(ca2 + "/admin.pem")
check(r.returncode == 0 and "OU = master, CN = N1" in t1 and "URI:mailmesh:master:N1" in t1
      and "OU = server, CN = admin" in t2 and "URI:mailmesh:server:admin" in t2,
      "--master N1 --server admin: each of the kind it was given (%s) (mutation: resolve() "
      "giving --master names the kind server)" % r.stderr.strip())
r = ctl("pki", "issue", "--dir", ca2, "--master", "N2", directory=amb)
check(r.returncode == 65, "--master N2 (a server, not a master): 65 (mutation: resolve() not "
      "looking --master names up)")

# a bad directory: the loader's status, nothing written
with open(os.path.join(W, "bad.ldif"), "w") as f:
    f.write("dn: o=Lab\nobjectClass: mmOrganization\n")
for spec, code, what in (("ldif:" + W + "/none.ldif", 66, "missing LDIF"),
                         ("ldif:" + W + "/bad.ldif", 65, "bad LDIF"),
                         ("ldap://127.0.23.9:1/o=Lab", 69, "LDAP server down"),
                         ("file:" + ldif, 64, "neither ldif: nor ldap://")):
    r = ctl("pki", "issue", "--dir", ca2, "N2", directory=spec)
    check(r.returncode == code and not os.path.exists(ca2 + "/N2.pem"),
          "--directory %s: %d, nothing written (got %d) (mutation: issue() going on with an "
          "empty directory when the loader fails)" % (what, code, r.returncode))

# DIR without its CA, or with a key that is not the CA's
nodir = os.path.join(W, "noca")
os.mkdir(nodir)
r = ctl("pki", "issue", "--dir", nodir, "N2")
check(r.returncode == 66 and "ca.pem" in r.stderr, "issue into a DIR without a CA: 66 "
      "(mutation: load_ca() saying EX_DATAERR for a file it cannot open)")
shutil.copy(CA + "/ca.pem", nodir)
shutil.copy(other + "/ca.key", nodir)
r = ctl("pki", "issue", "--dir", nodir, "N2")
check(r.returncode == 65 and "not the private key" in r.stderr and
      listing(nodir) == ["ca.key", "ca.pem"], "a ca.key that is not ca.pem's: 65 (mutation: "
      "load_ca() without X509_check_private_key())")

# --- the certificates in two meshnodes -----------------------------------


def tls_dir(name, extra=()):
    """What an operator gives a daemon: ca.pem, NAME.pem, NAME.key only
    (and, for the refusals, EXTRA: (source, name in the directory))."""
    d = tempfile.mkdtemp(prefix="tls-%s." % name, dir=W)
    for f in ("ca.pem", name + ".pem", name + ".key"):
        shutil.copy2(os.path.join(CA, f), d)
    for src, dst in extra:
        shutil.copy2(src, os.path.join(d, dst))
    return d


t1, t2 = tls_dir("N1"), tls_dir("N2")
r = subprocess.run([probe, "check", t1], capture_output=True, text=True)
check(r.returncode == 0, "the operator's layout (ca.pem, N1.pem, N1.key) passes the daemons' "
      "start check (mutation: holds_key_of() taking any key for the CA's)")
node(meshnode, ldif, "N1", W + "/s1", "--tls", t1, "--set", "retry_min_ms=600000")
node(meshnode, ldif, "N2", W + "/s2", "--tls", t2)
c = smtplib.SMTP(*N1)
c.sendmail("alice@example.test", ["bob@example.test"], "Subject: to bob\r\n\r\nhi\r\n")
c.quit()
check(wait_for(lambda: maildir(W + "/s2", "bob@example.test")),
      "N1 -> N2 delivered (mutation: X509_sign() with the new key)")
box = maildir(W + "/s2", "bob@example.test")
# between organization servers with --tls the relay requires TLS and
# verifies N2's certificate against ca.pem (4.7.5 otherwise): ESMTPS
# means a verified handshake
check(box and "with ESMTPS" in open(box[0]).read(),
      "N1 -> N2 over STARTTLS, N2's pki certificate verified by N1 (mutation: pki issue "
      "signing with the new key: the mail waits with 4.7.5)")


def relay_from_n1(cert):
    """N1's address dialling N2: relaying out takes N1's certificate."""
    sock = socket.create_connection(N2, 10, source_address=(N1[0], 0))
    t = Raw.__new__(Raw)
    t.s, t.buf = sock, b""
    t.greeting = t.reply()
    t.cmd("EHLO n1.lab.test")
    if cert:
        x = ssl.create_default_context(cafile=CA + "/ca.pem")
        x.check_hostname = False
        x.load_cert_chain(*cert)
        t.cmd("STARTTLS")
        t.s = x.wrap_socket(t.s)
        t.buf = b""
        t.cmd("EHLO n1.lab.test")
    t.cmd("MAIL FROM:<alice@example.test>")
    r = t.cmd("RCPT TO:<far@example.net>")
    t.close()
    return r


r, plain = relay_from_n1((t1 + "/N1.pem", t1 + "/N1.key")), relay_from_n1(None)
check(r.startswith("250") and plain.startswith("530"),
      "N2 takes N1's pki client certificate as an organization server's: relay accepted "
      "with it (%s), 530 without (%s) (mutation: extendedKeyUsage without clientAuth)"
      % (r, plain))

# openssl s_client with a pki client certificate: N2's certificate is
# verified and named, and N1's certificate earns AUTH EXTERNAL
r = ossl("s_client", "-starttls", "smtp", "-connect", "%s:%d" % N2, "-CAfile", CA + "/ca.pem",
         "-cert", t1 + "/N1.pem", "-key", t1 + "/N1.key", "-quiet", "-verify_return_error",
         input="EHLO n1.lab.test\r\nAUTH EXTERNAL =\r\nQUIT\r\n", timeout=20)
check("depth=0 O = Lab, OU = server, CN = N2\nverify return:1" in r.stderr and
      "\n235 " in r.stdout and "221 2.0.0" in r.stdout,
      "openssl s_client -cert N1.pem: N2's certificate verified (CN = N2), AUTH EXTERNAL 235 "
      "(mutation: extendedKeyUsage without clientAuth)")

# --- the CA's key in a --tls directory: exit 78 --------------------------


class Ran:
    def __init__(self, returncode, stderr):
        self.returncode, self.stderr = returncode, stderr


def refused(d, what):
    """meshnode --tls D exits 78 with a message naming WHAT. One that
    starts instead (a mutation) is stopped, not waited for."""
    p = subprocess.Popen([meshnode, "--directory", "ldif:" + ldif, "--server", "N1",
                          "--spool", os.path.join(W, "s-refused"), "--tls", d],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        err = p.communicate(timeout=10)[1]
    except subprocess.TimeoutExpired:
        p.kill()
        err = p.communicate()[1] + " (it started)"
    r = Ran(p.returncode, err)
    return r.returncode == 78 and what in r.stderr and "not starting" in r.stderr, r


ok, r = refused(tls_dir("N1", [(CA + "/ca.key", "ca.key")]), "ca.key")
check(ok, "meshnode --tls DIR with DIR/ca.key: exit 78 naming it (%d: %s) (mutation: "
      "meshnode.c without the mm_tls_check_dir() call)" % (r.returncode, r.stderr.strip()))
ok, r = refused(tls_dir("N1", [(CA + "/ca.key", "backup.key")]), "backup.key")
check(ok, "the CA's key as backup.key: exit 78 naming it (mutation: holds_key_of() without "
      "the EVP_PKEY_eq() match)")
d = tls_dir("N1")
with open(d + "/N1.pem", "a") as f, open(CA + "/ca.key") as k:
    f.write(k.read())
ok, r = refused(d, "N1.pem")
check(ok, "the CA's key behind the certificate in N1.pem: exit 78 (mutation: holds_key_of() "
      "looking at the first PEM block only)")
d = tls_dir("N1")
os.symlink(CA + "/ca.key", d + "/k")
ok, r = refused(d, "/k holds the CA's private key")
check(ok, "a link to the CA's key under another name: exit 78 (mutation: FTS_PHYSICAL, "
      "links not followed)")
d = tls_dir("N1")
os.symlink("/nonexistent/ca.key", d + "/ca.key")
ok, r = refused(d, "ca.key")
check(ok, "a dangling link named ca.key: exit 78 (mutation: lstat() check of ca.key dropped)")

# --- the routing contexts: mutual TLS 1.3, identity ----------------------

stranger = os.path.join(W, "stranger")
os.mkdir(stranger)
ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
     "-keyout", stranger + "/N1.key", "-out", stranger + "/N1.pem", "-days", "30",
     "-subj", "/O=Lab/OU=server/CN=N1", "-addext", "subjectAltName=URI:mailmesh:server:N1",
     check=True)
shutil.copy(CA + "/ca.pem", stranger)
# signed by the CA but made by hand: no identity, or two
hand = os.path.join(W, "hand")
os.mkdir(hand)
for name, ext in (("plain", None), ("twice", "subjectAltName=URI:mailmesh:server:N1,"
                                              "URI:mailmesh:master:LAB-RGM")):
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "%s/%s.key" % (hand, name), "-out", "%s/%s.csr" % (hand, name),
         "-subj", "/O=Lab/OU=server/CN=N1", check=True)
    ef = "%s/%s.ext" % (hand, name)
    with open(ef, "w") as f:
        f.write("extendedKeyUsage=serverAuth,clientAuth\n" + (ext + "\n" if ext else ""))
    ossl("x509", "-req", "-in", "%s/%s.csr" % (hand, name), "-CA", CA + "/ca.pem", "-CAkey",
         CA + "/ca.key", "-out", "%s/%s.pem" % (hand, name), "-days", "30", "-extfile", ef,
         check=True)
ADDR = "127.0.23.5:6911"


def serve(client, claim=(), mode="serve", d=None):
    """tls_probe accepting one connection; openssl s_client with args."""
    p = subprocess.Popen([probe, mode, d or t2, "N2", ADDR] + list(claim),
                         stdout=subprocess.PIPE, text=True)
    if p.stdout.readline().strip() != "listening":
        p.kill()
        return "", None
    c = ossl("s_client", "-connect", ADDR, "-CAfile", CA + "/ca.pem", "-brief", *client,
             input="", timeout=20)
    try:
        out = p.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        p.kill()
        out = p.communicate()[0]
    return out, c


out, c = serve(["-cert", t1 + "/N1.pem", "-key", t1 + "/N1.key"], ("server", "N1"))
check("protocol TLSv1.3\nidentity server N1\nexpect ok" in out and
      "Peer certificate: O = Lab, OU = server, CN = N2" in c.stderr,
      "691 accept: N1's certificate over TLS 1.3 reads as server N1, its Hello claim holds; "
      "s_client sees CN = N2 (%r) (mutation: kind_parse() reading every kind as admin)" % out)
out, _ = serve(["-cert", t1 + "/N1.pem", "-key", t1 + "/N1.key"], ("master", "N1"))
check("expect refused: certificate names server N1, expected master N1" in out,
      "a server's certificate claiming to be master N1: refused (%r) (mutation: "
      "mm_tls_expect_peer() comparing names only)" % out)
out, _ = serve(["-cert", t1 + "/N1.pem", "-key", t1 + "/N1.key"], ("server", "N2"))
check("expect refused: certificate names server N1, expected server N2" in out,
      "N1's certificate claiming to be N2: refused (mutation: mm_tls_expect_peer() "
      "comparing kinds only)")
out, _ = serve(["-cert", CA + "/admin.pem", "-key", CA + "/admin.key"])
check("identity admin admin" in out, "an admin certificate reads as admin admin (mutation: "
      "mm_cert_identity_uri() writing server for every kind)")
out, _ = serve(["-tls1_2", "-cert", t1 + "/N1.pem", "-key", t1 + "/N1.key"])
check("handshake failed" in out and "unsupported protocol" in out,
      "691 accept: TLS 1.2 refused (%r) (mutation: TLS1_2_VERSION in mm_tls_routing_init)" % out)
out, _ = serve([])
check("handshake failed" in out and "did not return a certificate" in out,
      "691 accept: no client certificate, no session (%r) (mutation: without "
      "SSL_VERIFY_FAIL_IF_NO_PEER_CERT)" % out)
out, _ = serve(["-cert", stranger + "/N1.pem", "-key", stranger + "/N1.key"])
check("handshake failed" in out and "identity" not in out,
      "691 accept: a stranger's certificate saying mailmesh:server:N1: no session (%r) "
      "(mutation: the routing contexts verifying with verify_later)" % out)
out, _ = serve(["-cert", hand + "/plain.pem", "-key", hand + "/plain.key"], ("server", "N1"))
check("identity none" in out and "carries no mailmesh identity" in out,
      "a CA-signed certificate without the URI names no one, though its CN is N1 (%r) "
      "(mutation: mm_tls_expect_peer() accepting a certificate without identity)" % out)
out, _ = serve(["-cert", hand + "/twice.pem", "-key", hand + "/twice.key"])
check("identity none" in out, "a certificate with two mailmesh URIs names no one (%r) "
      "(mutation: mm_cert_identity() keeping the last URI)" % out)
out, _ = serve(["-cert", stranger + "/N1.pem", "-key", stranger + "/N1.key"], mode="serve-smtp")
check("protocol" in out and "identity none" in out,
      "SMTP context: a stranger's certificate finishes the handshake but has no identity (%r) "
      "(mutation: mm_tls_peer_identity() without the SSL_get_verify_result() check)" % out)
out, _ = serve(["-cert", t1 + "/N1.pem", "-key", t1 + "/N1.key"], mode="serve-smtp")
check("identity server N1" in out, "SMTP context: N1's certificate reads as server N1 "
      "(mutation: mm_tls_peer_identity() wanting a verify error)")

# the dialing side checks the object it dialled
SADDR = "127.0.23.6:6911"


def s_server(d, name):
    """openssl s_server asking for a client certificate; tls_probe dial
    retries its connect until it listens"""
    return start(["openssl", "s_server", "-accept", SADDR, "-cert", "%s/%s.pem" % (d, name),
                  "-key", "%s/%s.key" % (d, name), "-CAfile", CA + "/ca.pem", "-Verify", "1",
                  "-quiet"], stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def dial(kind, name):
    r = subprocess.run([probe, "dial", t1, "N1", SADDR, kind, name], capture_output=True,
                       text=True, timeout=30)
    return r.returncode, r.stdout


p = s_server(t2, "N2")
rc, out = dial("server", "N2")
check(rc == 0 and "protocol TLSv1.3\nidentity server N2\nexpect ok" in out,
      "691 dial to server N2: N2's certificate, TLS 1.3 (%r) (mutation: the dial context "
      "left without certificate and CA)" % out)
rc, out = dial("server", "N3")
check(rc == 2 and "certificate names server N2, expected server N3" in out,
      "dialled N3, N2 answered: refused (%r) (mutation: as for N2's claim)" % out)
rc, out = dial("master", "N2")
check(rc == 2 and "expected master N2" in out, "dialled master N2, server N2 answered: "
      "refused (mutation: as for master N1's claim)")
p.terminate()
p.wait()
p = s_server(stranger, "N1")
rc, out = dial("server", "N1")
check(rc == 1 and "handshake failed" in out,
      "691 dial: a stranger's certificate (self-signed, mailmesh:server:N1): no session (%r) "
      "(mutation: the dial context with SSL_VERIFY_NONE)" % out)
p.terminate()
p.wait()
done()
