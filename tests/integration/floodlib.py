"""A handshake flood for the 691 bound tests (routing_flood.py): from
many source addresses, TCP connections to a daemon's listener that send
a TLS 1.3 ClientHello and never go on, each opened again as soon as the
daemon drops it, at a set rate of connection attempts.

It runs in a process of its own (so that the test's own work is not
slowed by it), on non-blocking sockets with one selector: every source
address keeps `per_source` connections to each target at most, and a
token bucket spends `rate` attempts a second among the slots that are
free. Flood.stop() says how many attempts were made and in how long."""
import multiprocessing
import os
import selectors
import socket
import ssl
import struct
import time


def client_hello():
    """The first flight of a TLS 1.3 client: the bytes a real client sends
    before the server answers (its key share makes the daemon compute)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_side=False)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def _run(targets, sources, rate, per_source, stop, results):
    hello = client_hello()
    sel = selectors.DefaultSelector()
    free = [(s, t) for s in sources for t in targets for _ in range(per_source)]
    attempts = dropped = 0
    t0 = time.monotonic()
    linger = struct.pack("ii", 1, 0)  # close with a reset: no TIME_WAIT here

    def drop(sock, slot):
        nonlocal dropped
        sel.unregister(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        sock.close()
        free.append(slot)
        dropped += 1

    while not stop.is_set():
        # the attempts the bucket allows by now, on free slots
        allowed = int(rate * (time.monotonic() - t0)) - attempts
        while allowed > 0 and free:
            slot = free.pop(0)
            src, (host, port) = slot
            s = socket.socket()
            s.setblocking(False)
            try:
                s.bind((src, 0))
                s.connect_ex((host, port))
            except OSError:
                s.close()
                free.append(slot)
                break
            sel.register(s, selectors.EVENT_WRITE, (slot, False))
            attempts += 1
            allowed -= 1
        for key, ev in sel.select(timeout=0.002):
            s, (slot, sent) = key.fileobj, key.data
            if not sent:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    drop(s, slot)
                    continue
                try:
                    s.send(hello)
                except OSError:
                    drop(s, slot)
                    continue
                sel.modify(s, selectors.EVENT_READ, (slot, True))
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:  # the daemon dropped it: at once again
                drop(s, slot)
    took = time.monotonic() - t0
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    results.put((attempts, dropped, took))


class Flood:
    """Connection attempts at targets ("ip:port" strings) from sources (ip
    strings), `rate` a second in all, until stop()."""

    def __init__(self, targets, sources, rate=1200, per_source=10):
        tg = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in targets]
        ctx = multiprocessing.get_context("fork")
        self.stop_ev, self.results = ctx.Event(), ctx.Queue()
        self.p = ctx.Process(target=_run, args=(tg, list(sources), rate, per_source,
                                                self.stop_ev, self.results), daemon=True)
        self.t0 = time.monotonic()
        self.p.start()

    def stop(self):
        """(attempts, attempts a second) since the start."""
        self.stop_ev.set()
        attempts, dropped, took = self.results.get(timeout=30)
        self.p.join(10)
        return attempts, attempts / took if took > 0 else 0.0


def sources(prefix, n=40, first=1):
    """n source addresses prefix+first .. prefix+(first+n-1)."""
    return ["%s%d" % (prefix, first + i) for i in range(n)]


if __name__ == "__main__":
    import sys
    f = Flood(sys.argv[1:2], sources(sys.argv[2]), rate=int(sys.argv[3]))
    time.sleep(float(sys.argv[4]))
    print(f.stop(), os.getpid())
