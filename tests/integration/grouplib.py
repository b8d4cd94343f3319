"""One routing group Lab with real processes, for routing_group.py,
routing_failover.py and routing_security.py: master candidates and
meshnodes N1..Nk on NET.x, SMTP connectors Primary (cost 1, bridgehead N1)
and Backup (cost 10, bridgehead N2) for smtp:*, certificates from `meshctl
pki`, and the live tables over `meshctl --connect`."""
import os
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rgmlib as R  # noqa: E402
from nodelib import files, node  # noqa: E402

# fast enough for a test, slow enough for a loaded machine under ASan
FASTNODE = ["--set", "glitch_retry_count=1", "--set", "glitch_retry_interval_ms=100",
            "--set", "down_probe_interval_ms=100", "--set", "retry_min_ms=200",
            "--set", "connect_timeout_ms=1000", "--set", "ping_interval_ms=100",
            "--set", "dead_after=5", "--set", "master_retry_min_ms=100",
            "--set", "master_retry_max_ms=300"]


class Group:
    def __init__(self, w, meshctl, net, nodes=4, candidates=(("LAB-RGM", 250, 100),)):
        """candidates: (name, last octet, priority); the highest priority
        is the preferred master."""
        self.w, self.meshctl, self.net = w, meshctl, net
        self.nodes = ["N%d" % (i + 1) for i in range(nodes)]
        self.ip = {n: net + str(i + 1) for i, n in enumerate(self.nodes)}
        self.masters = {name: "%s%d:6910" % (net, octet) for name, octet, _ in candidates}
        self.primary, self.backup = net + "21:25250", net + "22:25250"
        self.ldif = os.path.join(w, "lab.ldif")
        self._write(candidates)
        self.pki = R.Pki(meshctl, self.ldif, w)
        self.pki.issue(*(self.nodes + list(self.masters) + ["admin"]))
        self.admin = self.pki.dir("admin")
        self.tls = {}

    def _write(self, candidates):
        w = ["dn: o=Lab\nobjectClass: mmOrganization\no: Lab\n",
             "dn: cn=Lab,o=Lab\nobjectClass: mmRoutingGroup\ncn: Lab\n"]
        for name, _, prio in candidates:
            w.append("dn: cn=%s,cn=Lab,o=Lab\nobjectClass: mmMaster\ncn: %s\n"
                     "mmRoutingAddress: %s\nmmPriority: %d\n" % (name, name, self.masters[name], prio))
        for n in self.nodes:
            w.append("dn: cn=%s,cn=Lab,o=Lab\nobjectClass: mmServer\ncn: %s\nmmFqdn: %s.lab.test\n"
                     "mmRoutingAddress: %s:6911\n" % (n, n, n.lower(), self.ip[n]))
            w.append("dn: cn=SMTP,cn=%s,cn=Lab,o=Lab\nobjectClass: mmVirtualServer\ncn: SMTP\n"
                     "mmBind: %s:2525\nmmFqdn: %s.lab.test\nmmRelayAllow: 127.0.0.0/8\n"
                     % (n, self.ip[n], n.lower()))
        for name, bh, smart, cost in (("Primary", "N1", self.primary, 1),
                                      ("Backup", "N2", self.backup, 10)):
            host, port = smart.rsplit(":", 1)
            w.append("dn: cn=%s,cn=Lab,o=Lab\nobjectClass: mmConnector\ncn: %s\n"
                     "mmConnectorType: smtp\nmmCost: %d\n"
                     "mmLocalBridgehead: cn=SMTP,cn=%s,cn=Lab,o=Lab\n"
                     "mmAddressSpace: smtp:* %d\nmmSmartHost: [%s]:%s\nmmTlsPolicy: none\n"
                     % (name, name, cost, bh, cost, host, port))
        w.append("dn: cn=Policy,o=Lab\nobjectClass: mmRecipientPolicy\ncn: Policy\n"
                 "mmAuthoritativeDomain: example.test\n")
        with open(self.ldif, "w") as f:
            f.write("\n".join(w))

    def tlsdir(self, name):
        if name not in self.tls:
            self.tls[name] = self.pki.dir(name)
        return self.tls[name]

    def master(self, rgmaster, name, state=None, extra=()):
        return R.master(rgmaster, self.ldif, name, state or os.path.join(self.w, "state-" + name),
                        tls=self.tlsdir(name), extra=extra,
                        log=os.path.join(self.w, name + ".log"))

    def node(self, meshnode, n, *extra):
        return node(meshnode, self.ldif, n, os.path.join(self.w, n.lower()), "--tls",
                    self.tlsdir(n), *(FASTNODE + list(extra)))

    def table(self, name):
        """name's live table (a node or a candidate), None when it does not
        answer."""
        addr = self.masters.get(name) or self.ip[name] + ":6911"
        return R.table(self.meshctl, addr, self.admin)

    def tables(self, names=None):
        return {n: self.table(n) for n in (names or self.nodes)}

    def converged(self, pred=lambda t: True, names=None):
        """The tables when every daemon named answers with one digest, a Lab
        entry of a master's incarnation, and pred holds for each."""
        ts = self.last = self.tables(names)
        if any(t is None for t in ts.values()):
            return None
        if len({t["digest"] for t in ts.values()}) != 1:
            return None
        if any((R.version(t) or (0,))[0] == 0 or not pred(t) for t in ts.values()):
            return None
        return ts

    def send(self, n, subject, via="N3"):
        c = smtplib.SMTP(self.ip[via], 2525)
        for i in range(n):
            c.sendmail("s@example.test", ["far%d@example.net" % i],
                       "Subject: %s %d\r\n\r\nbody\r\n" % (subject, i))
        c.quit()

    def arrived(self, which, subject):
        d = os.path.join(self.w, which)
        return sum(1 for f in files(d)
                   if ("Subject: " + subject) in open(f, errors="replace").read())


def state(t, connector="Primary"):
    g = R.group(t)
    return next(c["state"] for c in g["connectors"] if c["name"] == connector)
