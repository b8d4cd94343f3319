"""The meshnode spool format (docs/meshnode.md, node/spool.c) in Python:
read the segments of a spool to see what it holds, and make records (good
or damaged) for tests.

  record: u32 magic "MMQ1" | u32 type | u32 payload length | u32 CRC-32C | payload
  MSG:  u64 id, u64 arrival, u32 ret|flags<<8, str sender, envid, helo, client,
        u32 n, n x (str address, str orcpt, u32 notify|done<<8), u32 body length, body
  DONE: u64 id, u32 recipient index
  str:  u32 length, bytes
"""
import os
import struct

MAGIC = 0x4D4D5131
MSG, DONE = 1, 2
HDR = struct.Struct("<IIII")

_table = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _table.append(_c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = (crc >> 8) ^ _table[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFFFFFF


def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<I", len(b)) + b


def record(type_, payload, crc=None):
    return HDR.pack(MAGIC, type_, len(payload), crc32c(payload) if crc is None else crc) + payload


def msg_payload(id_, rcpts, body, sender="load@example.org", arrival=0, done=()):
    p = struct.pack("<QQI", id_, arrival, 0)
    p += _str(sender) + _str("") + _str("crafted.test") + _str("127.0.0.1")
    p += struct.pack("<I", len(rcpts))
    for i, r in enumerate(rcpts):
        p += _str(r) + _str("") + struct.pack("<I", 0x100 if i in done else 0)
    b = body.encode() if isinstance(body, str) else body
    return p + struct.pack("<I", len(b)) + b


def msg(id_, rcpts, body, **kw):
    return record(MSG, msg_payload(id_, rcpts, body, **kw))


def done(id_, idx):
    return record(DONE, struct.pack("<QI", id_, idx))


class Msg:
    def __init__(self, id_, rcpts, done, body, seg, off, size):
        self.id, self.rcpts, self.done, self.body = id_, rcpts, done, body
        self.seg, self.off, self.size = seg, off, size   # where its record is, its length


def _rd_str(b, at):
    n = struct.unpack_from("<I", b, at)[0]
    return b[at + 4:at + 4 + n].decode("latin-1"), at + 4 + n


def parse_msg(p):
    id_, _arrival, _f = struct.unpack_from("<QQI", p, 0)
    at = 20
    for _ in range(4):
        _, at = _rd_str(p, at)
    n = struct.unpack_from("<I", p, at)[0]
    at += 4
    rcpts, flags = [], []
    for _ in range(n):
        a, at = _rd_str(p, at)
        _, at = _rd_str(p, at)
        v = struct.unpack_from("<I", p, at)[0]
        at += 4
        rcpts.append(a)
        flags.append(bool(v & 0x100))
    blen = struct.unpack_from("<I", p, at)[0]
    return id_, rcpts, flags, p[at + 4:at + 4 + blen]


def records(data, verify=True):
    """(offset, type, payload) of the readable records, and where they end.
    verify=False skips the CRC (pure Python: about 2 MB/s), for spools of
    many megabytes that only the power-cut harness has touched (it leaves
    whole records: a cut restores the size of the last sync)."""
    out, pos = [], 0
    while pos + HDR.size <= len(data):
        magic, type_, n, crc = HDR.unpack_from(data, pos)
        p = data[pos + HDR.size:pos + HDR.size + n]
        if magic != MAGIC or len(p) != n or (verify and crc32c(p) != crc):
            break
        out.append((pos, type_, p))
        pos += HDR.size + n
    return out, pos


def segments(spool):
    q = os.path.join(spool, "queue")
    try:
        names = sorted(n for n in os.listdir(q) if len(n) == 12 and n.endswith(".seg"))
    except FileNotFoundError:
        return []
    return [os.path.join(q, n) for n in names]


def read_spool(spool, verify=True):
    """What recovery would see: id -> Msg (the latest copy, with its done
    flags and the DONE records after it applied)."""
    msgs = {}
    for path in segments(spool):
        with open(path, "rb") as f:
            data = f.read()
        recs, _ = records(data, verify)
        for off, type_, p in recs:
            if type_ == MSG:
                id_, rcpts, flags, body = parse_msg(p)
                msgs[id_] = Msg(id_, rcpts, flags, body, os.path.basename(path), off,
                                HDR.size + len(p))
            elif type_ == DONE and len(p) == 12:
                id_, idx = struct.unpack("<QI", p)
                m = msgs.get(id_)
                if m and idx < len(m.done):
                    m.done[idx] = True
    return msgs
