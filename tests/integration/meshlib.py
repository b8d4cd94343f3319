"""Organizations of several routing groups with real processes, for the
X-LINK2STATE tests (xlink_*.py) and bench/xlink_chain.py: an LDIF written
from a short description (or an existing one), certificates from `meshctl
pki`, one rgmaster per candidate and one meshnode per server over mutual
TLS, and what each daemon holds over `meshctl --connect`.

A description: groups in order, each {"name", "masters": [(name, ip)],
"servers": [(name, ip)]}; connectors [(name, group, cost, [local servers],
target group, [remote servers])]; recipients [(local part, home server)]
in the domain DOMAIN. Every server has one virtual server SMTP on
ip:2525 and its 691 on ip:6911; masters listen on ip:6910."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rgmlib as R  # noqa: E402
from nodelib import node, start, wait_for  # noqa: E402

DOMAIN = "mesh.test"
SMTP_PORT, NODE_691, MASTER_691 = 2525, 6911, 6910

# fast enough for a test, slow enough for a loaded machine under ASan
FAST = ["--set", "ping_interval_ms=100", "--set", "dead_after=10",
        "--set", "master_retry_min_ms=100", "--set", "master_retry_max_ms=300"]
FASTNODE = FAST + ["--set", "xlink_digest_interval_ms=1000", "--set", "connect_timeout_ms=2000",
                   "--set", "glitch_retry_count=1", "--set", "glitch_retry_interval_ms=100",
                   "--set", "down_probe_interval_ms=300", "--set", "retry_min_ms=300",
                   "--set", "reroute_hold_ms=500", "--set", "test_hooks=1"]


def write_ldif(path, groups, connectors, recipients, relay="127.0.0.0/8"):
    """relay: every virtual server's mmRelayAllow (None: none -- only an
    organization server's certificate or AUTH relays)."""
    w = ["dn: o=Mesh\nobjectClass: mmOrganization\no: Mesh\n"]
    where = {}
    for g in groups:
        w.append("dn: cn=%s,o=Mesh\nobjectClass: mmRoutingGroup\ncn: %s\n" % (g["name"], g["name"]))
        for i, (m, ip) in enumerate(g["masters"]):
            w.append("dn: cn=%s,cn=%s,o=Mesh\nobjectClass: mmMaster\ncn: %s\n"
                     "mmRoutingAddress: %s:%d\nmmPriority: %d\n"
                     % (m, g["name"], m, ip, MASTER_691, 100 - 10 * i))
        for s, ip in g["servers"]:
            where[s] = g["name"]
            w.append("dn: cn=%s,cn=%s,o=Mesh\nobjectClass: mmServer\ncn: %s\nmmFqdn: %s.%s\n"
                     "mmRoutingAddress: %s:%d\n" % (s, g["name"], s, s.lower(), DOMAIN, ip,
                                                    NODE_691))
            w.append("dn: cn=SMTP,cn=%s,cn=%s,o=Mesh\nobjectClass: mmVirtualServer\ncn: SMTP\n"
                     "mmBind: %s:%d\nmmFqdn: %s.%s\n%s"
                     % (s, g["name"], ip, SMTP_PORT, s.lower(), DOMAIN,
                        "mmRelayAllow: %s\n" % relay if relay else ""))
    vs = lambda s: "cn=SMTP,cn=%s,cn=%s,o=Mesh" % (s, where[s])  # noqa: E731
    for name, group, cost, local, target, remote in connectors:
        w.append("dn: cn=%s,cn=%s,o=Mesh\nobjectClass: mmConnector\ncn: %s\n"
                 "mmConnectorType: routing-group\nmmCost: %d\n%smmTargetGroup: cn=%s,o=Mesh\n%s"
                 % (name, group, name, cost,
                    "".join("mmLocalBridgehead: %s\n" % vs(s) for s in local), target,
                    "".join("mmRemoteBridgehead: %s\n" % vs(s) for s in remote)))
    w.append("dn: cn=Policy,o=Mesh\nobjectClass: mmRecipientPolicy\ncn: Policy\n"
             "mmAuthoritativeDomain: %s\n" % DOMAIN)
    for local, home in recipients:
        w.append("dn: uid=%s,o=Mesh\nobjectClass: inetOrgPerson\nobjectClass: mmRecipient\n"
                 "uid: %s\ncn: %s\nsn: %s\nmail: %s@%s\nmmHomeServer: cn=%s,cn=%s,o=Mesh\n"
                 % (local, local, local, local, local, DOMAIN, home, where[home]))
    with open(path, "w") as f:
        f.write("\n".join(w))


def chain(n, servers=2, backup=None, net="127.0.7%d.", offset=0):
    """n groups G1..Gn in a chain (connectors Gi-Gj both ways, cost 1), each
    with a master Gi-RGM on NET.250 and servers Si1..Si<servers> on NET.1..;
    server Si1 is every connector's bridgehead. backup=(i, j, cost): a
    costlier pair of connectors between Gi and Gj. NET is formatted with the
    group's number plus offset."""
    groups = []
    for i in range(1, n + 1):
        ip = net % (i + offset)
        groups.append({"name": "G%d" % i, "masters": [("G%d-RGM" % i, ip + "250")],
                       "servers": [("S%d%d" % (i, k), ip + str(k)) for k in range(1, servers + 1)]})
    conns = []
    pairs = [(i, i + 1, 1) for i in range(1, n)] + ([backup] if backup else [])
    for a, b, cost in pairs:
        conns.append(("G%d-G%d" % (a, b), "G%d" % a, cost, ["S%d1" % a], "G%d" % b, ["S%d1" % b]))
        conns.append(("G%d-G%d" % (b, a), "G%d" % b, cost, ["S%d1" % b], "G%d" % a, ["S%d1" % a]))
    return groups, conns


class Mesh:
    """The daemons of an organization: addresses from the directory (servers'
    mmRoutingAddress, masters'), certificates for every one and an admin."""

    def __init__(self, w, meshnode, meshctl, rgmaster, ldif, servers, masters):
        """servers: {name: routing address}; masters: {name: routing address}."""
        self.w, self.meshnode, self.meshctl, self.rgmaster = w, meshnode, meshctl, rgmaster
        self.ldif, self.servers, self.masters = ldif, dict(servers), dict(masters)
        self.pki = R.Pki(meshctl, ldif, w)
        self.pki.issue(*(list(self.servers) + list(self.masters) + ["admin"]))
        self.admin = self.pki.dir("admin")
        self.tls = {}
        self.procs = {}

    @classmethod
    def of(cls, w, binaries, groups, connectors, recipients=(), **kw):
        ldif = os.path.join(w, "mesh.ldif")
        write_ldif(ldif, groups, connectors, recipients, **kw)
        servers = {s: "%s:%d" % (ip, NODE_691) for g in groups for s, ip in g["servers"]}
        masters = {m: "%s:%d" % (ip, MASTER_691) for g in groups for m, ip in g["masters"]}
        return cls(w, *binaries, ldif, servers, masters)

    def spool(self, name):
        return os.path.join(self.w, name)

    def log(self, name):
        return os.path.join(self.w, name + ".log")

    def start_master(self, name, *extra):
        self.tls.setdefault(name, self.pki.dir(name))
        self.procs[name] = R.master(self.rgmaster, self.ldif, name,
                                    os.path.join(self.w, "state-" + name), self.tls[name],
                                    extra=list(extra), log=self.log(name))
        return self.procs[name]

    def start_node(self, name, *extra):
        self.tls.setdefault(name, self.pki.dir(name))
        self.procs[name] = node(self.meshnode, self.ldif, name, self.spool(name), "--tls",
                                self.tls[name], *(FASTNODE + list(extra)))
        return self.procs[name]

    def start_all(self, *extra, masters=()):
        """Every master (masters: their extra arguments), then every node
        (extra: theirs)."""
        for m in self.masters:
            self.start_master(m, *masters)
        for s in self.servers:
            self.start_node(s, *extra)

    def kill(self, name):
        p = self.procs.pop(name)
        p.kill()
        p.wait()

    def stop(self, name):
        p = self.procs.pop(name)
        p.terminate()
        p.wait(30)
        return p.returncode

    def table(self, name):
        return R.table(self.meshctl, self.servers.get(name) or self.masters[name], self.admin)

    def tables(self, names=None):
        return {n: self.table(n) for n in (names or list(self.procs))}

    def converged(self, names=None):
        """The tables when every daemon named holds one digest, and every
        group's entry in it was issued and signed by one of its masters
        (None otherwise; the last tables in self.last)."""
        ts = self.last = self.tables(names)
        if any(t is None for t in ts.values()):
            return None
        if len({t["digest"] for t in ts.values()}) != 1:
            return None
        for t in ts.values():
            for g in t["groups"]:
                if g["versions"]["incarnation"] == 0 or not g.get("signed_by"):
                    return None
        return ts

    def digests(self):
        return {n: (t or {}).get("digest", "-")[:12] for n, t in (self.last or {}).items()}

    def report(self, server, connector, down, vserver="SMTP"):
        """The detector's report of server's bridgehead on connector, through
        the control socket's test hook (test_hooks=1)."""
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(20)
        s.connect(os.path.join(self.spool(server), "control.sock"))
        s.sendall(b"test-report %s %s %s\n" % (b"down" if down else b"up", connector.encode(),
                                               vserver.encode()))
        answer = s.recv(4096)
        s.close()
        return answer.startswith(b"0\n")


def connector_state(t, name):
    for g in (t or {}).get("groups", []):
        for c in g["connectors"]:
            if c["name"] == name:
                return c["state"]
    return None


def server_state(t, name):
    for g in (t or {}).get("groups", []):
        for s in g["servers"]:
            if s["name"] == name:
                return s["state"]
    return None


def route(meshctl, tls_admin, address, recipient):
    """A live node's decision for one recipient (meshctl route over 691)."""
    r = subprocess.run([meshctl, "--connect", address, "--tls", tls_admin, "--json", "route",
                        recipient], capture_output=True, text=True, timeout=60)
    try:
        return json.loads(r.stdout) if r.returncode == 0 else None
    except ValueError:
        return None


def tracking(spool):
    try:
        with open(os.path.join(spool, "tracking.log"), errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def copy_tree(src, dst):
    shutil.copytree(src, dst)


__all__ = ["Mesh", "chain", "write_ldif", "connector_state", "server_state", "route",
           "tracking", "start", "wait_for", "time"]
