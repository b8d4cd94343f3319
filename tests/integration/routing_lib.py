"""Helpers for the routing engine's integration tests (routing_*.py): an
organization with two SMTP connectors, the protobuf wire format by hand
(the link-state table of SPOOL/table, the 691 frames), and a 691 client
that speaks Hello and Query as meshctl --connect will."""
import os
import socket
import struct

# --- the organization --------------------------------------------------------


def org(path, n1, primary, backup=None, n2=None, master="127.0.60.250:6910",
        primary_cost=1, backup_cost=10):
    """Group Lab: master LAB-RGM (nothing need listen there), server N1
    (virtual server SMTP on n1 = "ip:port", routing address ip:6911), N2
    when given; SMTP connectors Primary (smart host primary) and Backup
    (smart host backup, costlier), both smtp:* with N1/SMTP as their local
    bridgehead; alice@example.test homed on N1."""
    out = []
    w = out.append
    w("dn: o=Lab\nobjectClass: mmOrganization\no: Lab\n")
    w("dn: cn=Lab,o=Lab\nobjectClass: mmRoutingGroup\ncn: Lab\n")
    w("dn: cn=LAB-RGM,cn=Lab,o=Lab\nobjectClass: mmMaster\ncn: LAB-RGM\n"
      "mmRoutingAddress: %s\nmmPriority: 100\n" % master)
    for name, bind in (("N1", n1), ("N2", n2)):
        if not bind:
            continue
        ip = bind.rsplit(":", 1)[0]
        w("dn: cn=%s,cn=Lab,o=Lab\nobjectClass: mmServer\ncn: %s\nmmFqdn: %s.lab.test\n"
          "mmRoutingAddress: %s:6911\n" % (name, name, name.lower(), ip))
        w("dn: cn=SMTP,cn=%s,cn=Lab,o=Lab\nobjectClass: mmVirtualServer\ncn: SMTP\n"
          "mmBind: %s\nmmFqdn: %s.lab.test\nmmRelayAllow: 127.0.0.0/8\n"
          % (name, bind, name.lower()))
    for name, smart, cost in (("Primary", primary, primary_cost),
                              ("Backup", backup, backup_cost)):
        if not smart:
            continue
        w("dn: cn=%s,cn=Lab,o=Lab\nobjectClass: mmConnector\ncn: %s\n"
          "mmConnectorType: smtp\nmmCost: %d\nmmLocalBridgehead: cn=SMTP,cn=N1,cn=Lab,o=Lab\n"
          "mmAddressSpace: smtp:* %d\nmmSmartHost: [%s]:%s\nmmTlsPolicy: none\n"
          % ((name, name, cost, cost) + tuple(smart.rsplit(":", 1))))
    w("dn: cn=Policy,o=Lab\nobjectClass: mmRecipientPolicy\ncn: Policy\n"
      "mmAuthoritativeDomain: example.test\n")
    w("dn: uid=alice,o=Lab\nobjectClass: inetOrgPerson\nobjectClass: mmRecipient\n"
      "uid: alice\ncn: alice\nsn: alice\nmail: alice@example.test\n"
      "mmHomeServer: cn=N1,cn=Lab,o=Lab\n")
    with open(path + ".new", "w") as f:
        f.write("\n".join(out))
    os.rename(path + ".new", path)


# --- protobuf, the wire format -------------------------------------------------


def _varint(v):
    b = bytearray()
    while True:
        x = v & 0x7F
        v >>= 7
        if v:
            b.append(x | 0x80)
        else:
            b.append(x)
            return bytes(b)


def _read_varint(b, i):
    v = shift = 0
    while True:
        if i >= len(b):
            raise ValueError("truncated varint")
        x = b[i]
        i += 1
        v |= (x & 0x7F) << shift
        shift += 7
        if not x & 0x80:
            return v, i


def decode(b):
    """A message as a list of [field, value]: value an int (varint) or
    bytes (length-delimited). Other wire types are refused."""
    out, i = [], 0
    while i < len(b):
        key, i = _read_varint(b, i)
        field, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(b, i)
        elif wt == 2:
            n, i = _read_varint(b, i)
            v = bytes(b[i:i + n])
            if len(v) != n:
                raise ValueError("truncated field")
            i += n
        else:
            raise ValueError("wire type %d" % wt)
        out.append([field, v])
    return out


def encode(fields):
    b = bytearray()
    for field, v in fields:
        if isinstance(v, bool):
            v = int(v)
        if isinstance(v, int):
            b += _varint(field << 3) + _varint(v)
        else:
            if isinstance(v, str):
                v = v.encode()
            elif isinstance(v, list):
                v = encode(v)
            b += _varint(field << 3 | 2) + _varint(len(v)) + v
    return bytes(b)


def get(fields, n, default=None):
    for f, v in fields:
        if f == n:
            return v
    return default


def get_all(fields, n):
    return [v for f, v in fields if f == n]


def put(fields, n, v):
    """Set field n (once), replacing what was there."""
    fields[:] = [x for x in fields if x[0] != n] + [[n, v]]


# The link-state table (proto/mailmesh.proto): LinkStateTable.groups = 1;
# GroupEntry name 1, version 3, servers 5, connectors 6; Version 1..4;
# Connector name 1, down 4, local_bridgeheads 7; Bridgehead server 1,
# virtual_server 2, down 4.


def table_groups(data):
    """SPOOL/table as {group: entry fields}."""
    return {get(g, 1, b"").decode(): g for g in (decode(x) for x in get_all(decode(data), 1))}


def table_bytes(groups):
    return encode([[1, encode(groups[k])] for k in sorted(groups)])


def version(entry):
    v = decode(get(entry, 3, b""))
    return tuple(get(v, i, 0) for i in (1, 2, 3, 4))


def set_version(entry, inc, major, minor, user):
    put(entry, 3, encode([[1, inc], [2, major], [3, minor], [4, user]]))


def connector(entry, name):
    for i, (f, v) in enumerate(entry):
        if f == 6 and get(decode(v), 1, b"").decode() == name:
            return i
    raise KeyError(name)


def mark_connector(entry, name, down=True):
    i = connector(entry, name)
    c = decode(entry[i][1])
    put(c, 4, 1 if down else 0)
    entry[i][1] = encode(c)


def mark_bridgehead(entry, name, server, vserver, down=True):
    i = connector(entry, name)
    c = decode(entry[i][1])
    for k, (f, v) in enumerate(c):
        if f == 7:
            bh = decode(v)
            if get(bh, 1, b"").decode() == server and get(bh, 2, b"").decode() == vserver:
                put(bh, 4, 1 if down else 0)
                c[k][1] = encode(bh)
    entry[i][1] = encode(c)


# --- TCP 691 ---------------------------------------------------------------------

ROLE_NODE, ROLE_MASTER, ROLE_ADMIN = 0, 1, 2


def hello(name, role=ROLE_ADMIN, group="", major=1):
    return [[2, [[1, name], [2, group], [5, major], [6, 0], [7, role]]]]


def query(command, *args):
    return [[7, [[1, command]] + [[2, a] for a in args]]]


class Conn:
    """One 691 connection: frames out, frames in (as decoded fields)."""

    def __init__(self, addr, ctx=None, timeout=10):
        host, port = addr.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout)
        self.s = ctx.wrap_socket(s) if ctx else s
        self.buf = b""
        self.seq = 0

    def send_raw(self, data):
        self.s.sendall(data)

    def send(self, frame):
        self.seq += 1
        body = encode([[1, self.seq]] + frame)
        self.send_raw(struct.pack(">I", len(body)) + body)

    def recv(self):
        """The next frame, or None when the peer closed."""
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    f = decode(self.buf[4:4 + n])
                    self.buf = self.buf[4 + n:]
                    return f
            try:
                chunk = self.s.recv(65536)
            except (ConnectionResetError, OSError):
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk

    def closed(self):
        """True when the peer closes (whatever it sent before)."""
        while True:
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                return False
            except OSError:
                return True
            if not chunk:
                return True

    def admin(self, name):
        """Hello as an admin; the node's Hello back (fields), or None."""
        self.send(hello(name))
        f = self.recv()
        return decode(get(f, 2)) if f and get(f, 2) is not None else None

    def ask(self, command, *args):
        """Query; (status, text of the Reply), or None when closed. Pings
        on the way are answered."""
        self.send(query(command, *args))
        while True:
            f = self.recv()
            if f is None:
                return None
            if get(f, 9) is not None:  # Ping
                self.send([[10, [[1, get(decode(get(f, 9)), 1, 0)]]]])
                continue
            r = get(f, 8)
            if r is not None:
                r = decode(r)
                return get(r, 1, 0), get(r, 2, b"").decode()

    def close(self):
        self.s.close()
