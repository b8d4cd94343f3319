#!/usr/bin/env python3
"""Revocation (DESIGN §7a): `meshctl pki revoke` writes crl.pem; daemons load
it from --tls at SIGHUP; a revoked certificate is refused on 691 (a
connection already open included), for relaying and for AUTH EXTERNAL, and
a revoked master's entries are dropped wherever they arrive.

Two groups G1 (S11 bridgehead, S12) and G2 (S21 bridgehead, S22), one
master each, no relay allow-list: only an organization server's
certificate relays.

1. Before: S12's certificate relays through S11 and passes AUTH EXTERNAL;
   the admin certificate admin2 reads S11's table.
2. S12 and admin2 revoked, crl.pem to every daemon, SIGHUP: S12's open
   connection to its master is closed and S12 shows down; S12's
   certificate no longer relays nor passes AUTH EXTERNAL; admin2 is
   refused on 691.
3. G2-RGM revoked, the new crl.pem to G1's daemons only: G2's next entry
   reaches G2's servers, and no daemon of G1 takes it.

usage: xlink_revoke.py MESHNODE MESHCTL RGMASTER
"""
import os
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import meshlib as M  # noqa: E402
import rgmlib as R  # noqa: E402
from nodelib import check, done, wait_for, workdir  # noqa: E402

meshnode, meshctl, rgmaster = sys.argv[1:4]
W = workdir("xlink-revoke")
groups, conns = M.chain(2, servers=2, net="127.0.8%d.", offset=7)  # 127.0.88.x, 127.0.89.x
mesh = M.Mesh.of(W, (meshnode, meshctl, rgmaster), groups, conns, relay=None)
mesh.pki.issue("--admin", "admin2")
admin2 = mesh.pki.dir("admin2")
mesh.start_all()
check(wait_for(mesh.converged, 90, 0.2) is not None,
      "two groups: one digest of signed entries (%s)" % mesh.digests())
S11 = mesh.servers["S11"].split(":")[0]


def session(cert):
    """An SMTP session to S11 under TLS, presenting cert's key and
    certificate (a --tls directory's); None when the handshake fails."""
    ctx = ssl.create_default_context(cafile=os.path.join(mesh.pki.ca, "ca.pem"))
    ctx.check_hostname = False
    ctx.load_cert_chain(os.path.join(mesh.pki.ca, cert + ".pem"),
                        os.path.join(mesh.pki.ca, cert + ".key"))
    s = smtplib.SMTP(S11, M.SMTP_PORT, timeout=30)
    try:
        s.starttls(context=ctx)
        s.ehlo("probe.test")
        return s
    except (ssl.SSLError, smtplib.SMTPException, OSError):
        return None


def relays(cert):
    s = session(cert)
    if s is None:
        return "no TLS session"
    s.mail("someone@" + M.DOMAIN)
    code, text = s.rcpt("someone@example.org")
    s.quit()
    return "%d %s" % (code, text.decode(errors="replace"))


def external(cert):
    s = session(cert)
    if s is None:
        return "no TLS session"
    code, text = s.docmd("AUTH", "EXTERNAL =")
    s.quit()
    return "%d %s" % (code, text.decode(errors="replace"))


def reads(tls_dir, as_):
    r = R.ctl(meshctl, mesh.servers["S11"], tls_dir, "--json", "table", as_=as_)
    return r.returncode


def s_client(*extra):
    """openssl s_client to S11's 691 as admin2, held open a second (a TLS 1.3
    ticket comes after the handshake): its output."""
    d = os.path.join(mesh.pki.ca)
    r = subprocess.run(["sh", "-c", 'c=$1 k=$2 a=$3; shift 3; sleep 1 | openssl s_client '
                        '-connect "$0" -cert "$c" -key "$k" -CAfile "$a" "$@" 2>&1',
                        mesh.servers["S11"],
                        d + "/admin2.pem", d + "/admin2.key", d + "/ca.pem"] + list(extra),
                       capture_output=True, text=True, timeout=60)
    return r.stdout


# --- 1. before -----------------------------------------------------------------
check(relays("S12").startswith("250"), "S12's certificate relays through S11 (%s)" % relays("S12"))
check(external("S12").startswith("235"), "S12's certificate passes AUTH EXTERNAL")
check(reads(admin2, "admin2") == 0, "admin2 reads S11's table on 691")
SESSION = os.path.join(W, "admin2.session")
s_client("-sess_out", SESSION)
held = session("S12")  # open across the revocation
check(held is not None, "a session with S12's certificate, open before the revocation")


def revoke(names, daemons):
    r = subprocess.run([meshctl, "pki", "revoke", "--dir", mesh.pki.ca] + names,
                       capture_output=True, text=True)
    check(r.returncode == 0, "meshctl pki revoke %s (%s)" % (" ".join(names), r.stdout.strip()))
    for d in daemons:
        shutil.copy2(os.path.join(mesh.pki.ca, "crl.pem"), os.path.join(mesh.tls[d], "crl.pem"))
        mesh.procs[d].send_signal(signal.SIGHUP)
    shutil.copy2(os.path.join(mesh.pki.ca, "crl.pem"), os.path.join(mesh.admin, "crl.pem"))


# --- 2. a server's and an admin's certificates revoked ---------------------------------
revoke(["S12", "admin2"], list(mesh.procs))
# (mutation: mm_net_recheck() not called at SIGHUP -- S12's connection,
# open since before, goes on and S12 stays up)
check(wait_for(lambda: M.server_state(mesh.table("S11"), "S12") == "down", 60, 0.2),
      "S12's open 691 connection closed at the reload: S12 down in S11's table")
# (mutation: mm_tls_apply_crl() not setting X509_V_FLAG_CRL_CHECK -- every
# revoked certificate is taken as before)
check(not relays("S12").startswith("250"), "S12's certificate relays no more (%s)"
      % relays("S12"))
check(not external("S12").startswith("235"), "S12's certificate passes AUTH EXTERNAL no more (%s)"
      % external("S12"))
check(reads(admin2, "admin2") != 0, "admin2 is refused on 691 (exit %d)" % reads(admin2, "admin2"))
# (mutation: node/tls.c no_resumption() not called on the 691 context --
# admin2 comes back on the ticket it was given before the revocation)
if os.path.exists(SESSION):
    out = s_client("-sess_in", SESSION)
    check("CONNECTED" in out and "Reused" not in out,
          "admin2 cannot resume a session from before the revocation (%s)"
          % ("reused" if "Reused" in out else "a full handshake, refused" if "CONNECTED" in out
             else "no connection: " + " ".join(out.split())[:300]))
else:
    check(True, "admin2 cannot resume a session from before the revocation (it was given none)")
check(relays("S11").startswith("250"), "S11's own certificate, not revoked, still relays")


def held_relays():
    try:
        held.mail("someone@" + M.DOMAIN)
        code, text = held.rcpt("someone@example.org")
        return "%d %s" % (code, text.decode(errors="replace"))
    except (smtplib.SMTPException, OSError) as e:
        return "closed: %s" % e


# (mutation: node_recheck_sessions() not called at SIGHUP -- the session
# opened before goes on relaying as an organization server)
r = held_relays()
check(not r.startswith("250"), "the session opened before the revocation relays no more (%s)" % r)

# --- 3. a master revoked: its entries dropped ------------------------------------
g2 = lambda t: R.version(t, "G2")  # noqa: E731
before = g2(mesh.table("S11"))
revoke(["G2-RGM"], ["S11", "S12", "G1-RGM"])
check(mesh.report("S21", "G2-G1", True), "G2-G1 reported down at S21")
check(wait_for(lambda: g2(mesh.table("S22")) not in (None, before), 30, 0.1),
      "G2's new entry reaches S22 (no CRL in G2): %s -> %s" % (before, g2(mesh.table("S22"))))
wait_for(lambda: "revoked" in open(mesh.log("S11")).read(), 10)
# (mutation: linkstate/entrysig.c verify() without X509_V_FLAG_CRL_CHECK --
# S11 takes the revoked master's entry)
check(g2(mesh.table("S11")) == before and g2(mesh.table("G1-RGM")) == before,
      "no daemon of G1 takes the revoked master's entry (S11 %s, G1-RGM %s)"
      % (g2(mesh.table("S11")), g2(mesh.table("G1-RGM"))))
check("its signer's certificate is revoked" in open(mesh.log("S11")).read(),
      "S11 says why: its signer's certificate is revoked")
# S21 relays G2's entries in good faith (its CRL has no G2-RGM): S11 drops
# them and goes on exchanging -- G1's changes still reach G2.
# (mutation: member.c judge() refusing a revoked master's entry like a
# forged one -- S11 closes the session, does not hear S21 nor dial it for
# 60 s, again at each round: G2 never learns of G1-G2)
check(mesh.report("S11", "G1-G2", True), "G1-G2 reported down at S11")
check(wait_for(lambda: M.connector_state(mesh.table("S21"), "G1-G2") == "down", 30, 0.1),
      "G1's change still reaches S21: the link is not shut for the revoked master's entries")
for n in list(mesh.procs):
    rc = mesh.stop(n)
    check(rc == 0, "%s exits 0 on SIGTERM (got %s)" % (n, rc))
done()
