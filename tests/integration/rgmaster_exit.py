#!/usr/bin/env python3
"""rgmaster's exit statuses (docs/rgmaster.md, EXIT STATUS), each from a
real start on 127.0.53.x: 0 for --help and SIGTERM, 64 usage, 65 bad
directory data, a --name that is no candidate, a corrupt --state, 66 no
LDIF, 69 no LDAP server or the address taken, 73 --log or --state that
cannot be created, 78 the CA's key or missing material in --tls.

Each check names, in "(mutation: ...)", the change to the code it was seen
to fail on.

usage: rgmaster_exit.py RGMASTER MESHCTL MKORG
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rgmlib as R  # noqa: E402
from nodelib import check, workdir  # noqa: E402

rgmaster, meshctl, mkorg = sys.argv[1:4]
W = workdir("rgm-exit")
IP = "127.0.53.1"
ldif = R.org(mkorg, os.path.join(W, "lab.ldif"), IP)
pki = R.Pki(meshctl, ldif, W)
pki.issue("LAB-RGM", "N1")
tls = pki.dir("LAB-RGM")
n = [0]


def st():
    """A fresh --state directory name (not made)."""
    n[0] += 1
    return os.path.join(W, "state%d" % n[0])


def base(state=None, tls_dir=tls, spec=None, name="LAB-RGM"):
    a = ["--directory", spec or "ldif:" + ldif, "--name", name, "--state", state or st()]
    return a + (["--tls", tls_dir] if tls_dir else [])


def expect(code, args, what, text=None, mutation=""):
    rc, err = R.run(rgmaster, *args)
    ok = rc == code and (text is None or text in err)
    check(ok, "%s: exit %s (got %s%s)%s" % (what, "none (it starts)" if code is None else code, rc, "" if ok else ": " + err.strip()[-300:],
                                            " (mutation: %s)" % mutation if mutation else ""))


r = subprocess.run([rgmaster, "--help"], capture_output=True, text=True)
check(r.returncode == 0 and "ping_interval_ms" in r.stdout and "insecure" in r.stdout,
      "--help: exit 0, every setting with its default on stdout (mutation: 'h' returning "
      "EX_USAGE)")

# 64: the command line
expect(64, [], "no option at all", "are required")
expect(64, base()[:4] + ["--tls", tls], "no --state", "are required",
       "main() not asking for --state")
expect(64, base() + ["--bogus"], "an unknown option")
expect(64, base() + ["stray"], "a stray operand", "stray operand",
       "main() without the optind check")
expect(64, base() + ["--set", "nosuch=1"], "--set an unknown key", "unknown setting")
expect(64, base() + ["--set", "ping_interval_ms=0"], "--set ping_interval_ms=0 (below 1)",
       "out of range", "the settings' lo bound 0")
expect(64, base() + ["--set", "dead_after=1001"], "--set dead_after=1001 (above 1000)",
       "out of range")
expect(64, base() + ["--set", "settle_ms=-1"], "--set settle_ms=-1", "not a number",
       "rgm_settings_set() without the '-' check (strtoull takes it)")
expect(64, base() + ["--set", "retry_ms"], "--set without =VALUE", "want KEY=VALUE")
expect(64, base(tls_dir=None), "no --tls and no insecure=1", "needs --tls",
       "main() without the tls/insecure check")
expect(64, base() + ["--set", "insecure=1"], "--tls with insecure=1", "exclude each other")
expect(64, base(spec="file:" + ldif), "--directory neither ldif: nor ldap://")

# 65: bad data
bad = os.path.join(W, "bad.ldif")
with open(ldif) as f, open(bad, "w") as g:
    g.write(f.read().replace("mmPriority: 100", "mmPriority: high"))
expect(65, base(spec="ldif:" + bad), "a bad directory, reported as FILE:LINE", bad + ":",
       "load_directory() without mm_diag_print")
expect(65, base(name="NOPE"), "--name NOPE, no master candidate", "no master candidate",
       "main() going on without its candidate")
expect(65, base(name="N1"), "--name N1, a server and no candidate", "no master candidate")
for content, what in (("12x\n", "not a number"), ("", "empty"), ("42", "no newline"),
                      ("9007199254740992\n", "2^53, out of range"),
                      ("1\n2\n", "two lines"), ("00000000000000001\n", "17 digits")):
    d = st()
    os.mkdir(d)
    with open(os.path.join(d, "incarnation"), "w") as f:
        f.write(content)
    expect(65, base(state=d), "--state holding %r (%s)" % (content, what), "is corrupt",
           "rgm_state_read() taking what strtoull reads")
d = st()
os.mkdir(d)
with open(os.path.join(d, "incarnation"), "w") as f:
    f.write("9007199254740991\n")
expect(None, base(state=d), "--state at 2^53 - 1 exactly: starts (the largest believed)")

# 66, 69: the directory's source
expect(66, base(spec="ldif:" + os.path.join(W, "none.ldif")), "an LDIF that is not there")
expect(69, base(spec="ldap://127.0.53.9:1/o=Lab"), "an LDAP server that does not answer")
p = R.master(rgmaster, ldif, "LAB-RGM", st(), tls, log=os.path.join(W, "first.log"))
expect(69, base(), "the routing address taken by a running master", "cannot listen",
       "main() ignoring mm_net_listen()'s result")
R.terminate(p)

# 73: what cannot be created
expect(73, base() + ["--log", os.path.join(W, "no", "dir", "log")], "--log in a missing "
       "directory")
expect(73, base(state=os.path.join(W, "no", "such", "state")), "--state under a missing "
       "parent", "cannot create", "rgm_state_read() not making DIR (the failure comes at the "
       "first persist instead)")

# 78: the TLS directory
withkey = pki.dir("LAB-RGM", extra=[(os.path.join(pki.ca, "ca.key"), "ca.key")])
expect(78, base(tls_dir=withkey), "the CA's key in --tls", "ca.key",
       "main() without mm_tls_check_dir")
renamed = pki.dir("LAB-RGM", extra=[(os.path.join(pki.ca, "ca.key"), "backup.key")])
expect(78, base(tls_dir=renamed), "the CA's key as backup.key in --tls", "backup.key")
nocert = pki.dir("LAB-RGM")
os.unlink(os.path.join(nocert, "LAB-RGM.pem"))
expect(78, base(tls_dir=nocert), "no LAB-RGM.pem in --tls", "LAB-RGM.pem")
other = pki.dir("N1")
expect(78, base(tls_dir=other), "--tls holding another daemon's files (N1's)", "LAB-RGM.pem")

# 0: SIGTERM, with the state written
d = st()
p = R.master(rgmaster, ldif, "LAB-RGM", d, tls, log=os.path.join(W, "last.log"))
rc = R.terminate(p)
check(rc == 0, "SIGTERM right after ready: exit 0 (got %s)" % rc)
shutil.rmtree(d, ignore_errors=True)
R.done()
