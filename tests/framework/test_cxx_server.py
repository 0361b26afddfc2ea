#!/usr/bin/python3
"""Drives tests/framework/cxx_server (C++20, the way C++ frameworks on
libmicrohttpd use libmicrohttpd_ws) with Python's websockets and raw
sockets.

Usage: /usr/bin/python3 tests/framework/test_cxx_server.py BUILDDIR

- 50 concurrent clients x 100 messages each, text and binary mixed,
  0 bytes to 64 KiB, text with 1- to 4-byte UTF-8 characters, sent
  without waiting for the echoes; every echo compared byte for byte;
- ping -> pong with its payload, unsolicited pongs ignored, close
  answered with the client's code;
- frames cut across reads, several frames in one read, frames in the
  same packet as the handshake (MHD's extra_in);
- invalid input answered with the close code that fits (1002, 1007);
- a client that vanishes mid-frame;
- shutdown (SIGINT) with a client still connected: it gets a 1001 close,
  the server exits 0, and its counters show that every upgraded socket
  was given back exactly once and every message echoed.

Skipped ("0 passed, 0 failed" with a message) when configure found no
C++20 compiler.  Environment:
  CXX_SERVER_SEED=N       repeat a run's random messages
  CXX_SERVER_VALGRIND=1   run the server under valgrind (memcheck, leaks
                          are errors; timeouts grow)
  EXPECT_MHD_VERSION=V    fail unless the server runs on libmicrohttpd V
                          (for runs against another build of it, e.g.
                          configure with PKG_CONFIG_PATH=/work/mhd-1.0.1/
                          lib/pkgconfig and run with LD_LIBRARY_PATH=
                          /work/mhd-1.0.1/lib EXPECT_MHD_VERSION=1.0.1
                          make check-framework)
The last line printed is "N passed, N failed".
"""

import asyncio
import base64
import hashlib
import os
import random
import re
import signal
import socket
import struct
import sys
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'interop'))
from example_server import ExampleServer, Failure, check  # noqa: E402

try:
    import websockets
    import websockets.exceptions
except ImportError:
    print("the websockets module is missing (Debian: python3-websockets; "
          "run with /usr/bin/python3)")
    print("0 passed, 1 failed")
    sys.exit(1)

CLIENTS = 50
MESSAGES = 100
MAX_SIZE = 64 * 1024
VALGRIND = os.environ.get("CXX_SERVER_VALGRIND") == "1"
SLOW = 20.0 if VALGRIND else 1.0
TIMEOUT = 10.0 * SLOW
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# ---------------------------------------------------------------- data

def utf8_source(rng, nbytes):
    """Random text of about nbytes in UTF-8, characters of every length
    (no surrogates), as bytes."""
    ranges = [(0x20, 0x7E), (0x80, 0x7FF), (0x800, 0xD7FF),
              (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
    chars = [chr(rng.randint(lo, hi)) for lo, hi in ranges
             for _ in range(400)]
    chars += [chr(c) for c in (0, 0x7F, 0x80, 0x7FF, 0x800, 0xFFFD,
                               0xFFFF, 0x10000, 0x10FFFF)]
    text = "".join(rng.choices(chars, k=nbytes // 2))
    return text.encode("utf-8")


def text_of(rng, source, nbytes):
    """A str exactly nbytes long in UTF-8: a slice of source cut at
    character boundaries, topped up with ASCII."""
    if nbytes == 0:
        return ""
    start = rng.randrange(len(source) - nbytes)
    while source[start] & 0xC0 == 0x80:
        start += 1
    end = start + nbytes
    while end > start and source[end] & 0xC0 == 0x80:
        end -= 1
    chunk = source[start:end] + b"z" * (nbytes - (end - start))
    assert len(chunk) == nbytes
    return chunk.decode("utf-8")


def message_plan(rng, source, client):
    """CLIENTS x MESSAGES messages: the edges of the length encodings
    first, then sizes spread evenly over their logarithm."""
    edges = [0, 1, 2, 3, 4, 125, 126, 127, 128, 65535, 65536]
    out = []
    for i in range(MESSAGES):
        size = edges[i] if i < len(edges) else \
            min(MAX_SIZE, int(2 ** rng.uniform(0, 16)))
        # Every client sends both kinds; which comes first varies.
        if (i + client) % 2 == 0:
            out.append(text_of(rng, source, size))
        else:
            out.append(rng.randbytes(size))
    return out


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def check_echo(sent, got, what):
    check(type(got) is type(sent),
          "%s: a %s came back as %s" % (what, type(sent).__name__,
                                        type(got).__name__))
    if got != sent:
        if isinstance(sent, str):
            sent, got = sent.encode("utf-8"), got.encode("utf-8")
        raise Failure("%s: sent %d bytes, got %d, first difference at "
                      "byte %d" % (what, len(sent), len(got),
                                   first_difference(sent, got)))


# ---------------------------------------------------------------- clients

def connect(env, **kw):
    env["connections"] += 1
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", TIMEOUT)
    kw.setdefault("close_timeout", TIMEOUT)
    kw.setdefault("max_size", None)
    kw.setdefault("max_queue", None)
    return websockets.connect(env["url"], **kw)


async def recv(ws, timeout=TIMEOUT):
    return await asyncio.wait_for(ws.recv(), timeout)


class Raw:
    """A hand-made client on a plain socket, for what websockets will not
    send (invalid frames, frames cut anywhere)."""

    def __init__(self, env, first=b""):
        env["connections"] += 1
        self.sock = socket.create_connection(("127.0.0.1", env["port"]),
                                             timeout=TIMEOUT)
        key = base64.b64encode(os.urandom(16))
        request = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: " + key + b"\r\n"
                   b"Sec-WebSocket-Version: 13\r\n\r\n")
        # first: frames in the same write as the handshake.
        self.sock.sendall(request + first)
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        check(head.startswith(b"HTTP/1.1 101"),
              "handshake answered %r" % head[:40])
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        check(b"\r\nSec-WebSocket-Accept: " + accept in head,
              "wrong or missing Sec-WebSocket-Accept")

    def _more(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Failure("the server closed the connection early")
        self.buf += chunk

    def send(self, data):
        self.sock.sendall(data)

    def read_frame(self):
        """(fin, opcode, payload) of the next frame from the server, which
        must not be masked."""
        while len(self.buf) < 2:
            self._more()
        b0, b1 = self.buf[0], self.buf[1]
        check(b1 & 0x80 == 0, "the server masked a frame")
        n, pos = b1 & 0x7F, 2
        if n == 126:
            while len(self.buf) < 4:
                self._more()
            n, pos = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            while len(self.buf) < 10:
                self._more()
            n, pos = struct.unpack("!Q", self.buf[2:10])[0], 10
        while len(self.buf) < pos + n:
            self._more()
        payload = self.buf[pos:pos + n]
        self.buf = self.buf[pos + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def expect_close(self, code):
        fin, opcode, payload = self.read_frame()
        check(opcode == 8, "expected a close frame, got opcode %d" % opcode)
        check(len(payload) >= 2, "close frame without a code")
        got = struct.unpack("!H", payload[:2])[0]
        check(got == code, "close code %d, expected %d (reason %r)"
              % (got, code, payload[2:]))
        # Then the server closes TCP: EOF, not a hang.
        self.sock.settimeout(TIMEOUT)
        try:
            rest = self.sock.recv(1)
        except ConnectionResetError:
            rest = b""
        check(rest == b"", "bytes after the close frame: %r" % rest)

    def close(self):
        self.sock.close()


def frame(opcode, payload, fin=True, mask=True, rsv=0):
    """A client frame; masked unless told otherwise."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    m = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


# ---------------------------------------------------------------- tests

TESTS = []


def test(name):
    def register(fn):
        TESTS.append((name, fn))
        return fn
    return register


@test("%d clients x %d messages at once, every echo byte for byte"
      % (CLIENTS, MESSAGES))
async def load(env):
    rng = env["rng"]
    source = utf8_source(rng, 4 * MAX_SIZE)
    plans = [message_plan(rng, source, c) for c in range(CLIENTS)]

    async def client(c):
        async with connect(env) as ws:
            # Sends without waiting, so decoding and encoding on one
            # stream overlap in the server's two threads.
            async def send_all():
                for m in plans[c]:
                    await ws.send(m)
            sender = asyncio.ensure_future(send_all())
            try:
                for i, m in enumerate(plans[c]):
                    check_echo(m, await recv(ws, 6 * TIMEOUT),
                               "client %d message %d (%d bytes)"
                               % (c, i, len(m)))
            finally:
                sender.cancel()
            await sender
        return sum(len(m) for m in plans[c])

    start = time.monotonic()
    sizes = await asyncio.gather(*(client(c) for c in range(CLIENTS)))
    texts = sum(isinstance(m, str) for p in plans for m in p)
    multibyte = sum(isinstance(m, str) and len(m) != len(m.encode())
                    for p in plans for m in p)
    print("    %d messages (%d text, %d of them with multi-byte UTF-8), "
          "%.1f MB echoed in %.1f s"
          % (CLIENTS * MESSAGES, texts, multibyte, sum(sizes) / 1e6,
             time.monotonic() - start))
    check(multibyte > 0, "no text with multi-byte characters was sent")
    env["echoes_expected"] += CLIENTS * MESSAGES


@test("a ping is answered with a pong that carries its payload")
async def ping(env):
    async with connect(env) as ws:
        for payload in (b"", b"x", bytes(range(125))):
            waiter = await ws.ping(payload)
            await asyncio.wait_for(waiter, TIMEOUT)
        await ws.send("after the pings")
        check_echo("after the pings", await recv(ws), "echo")
        env["echoes_expected"] += 1


@test("an unsolicited pong is ignored")
async def pong(env):
    async with connect(env) as ws:
        await ws.pong(b"unsolicited")
        await ws.pong(b"")
        await ws.send(b"still here")
        check_echo(b"still here", await recv(ws), "echo after pongs")
        env["echoes_expected"] += 1


@test("a close is answered with the client's code")
async def close_codes(env):
    async with connect(env) as ws:
        await ws.close(4001, "bye")
        check(ws.close_code == 4001, "answered %r" % ws.close_code)
    async with connect(env) as ws:
        await ws.close(1000)
        check(ws.close_code == 1000, "answered %r" % ws.close_code)


@test("frames cut across reads, several in one read, with the handshake")
async def split_frames(env):
    msgs = [b"one", b"", "zwei \u00e4\u20ac\U0001F600".encode(),
            bytes(300), os.urandom(70000)]
    ops = [2, 1, 1, 2, 2]
    frames = [frame(op, m) for op, m in zip(ops, msgs)]
    # The first two ride in the handshake's packet (MHD's extra_in).
    raw = Raw(env, first=frames[0] + frames[1])
    try:
        # Three in one write.
        raw.send(frames[2] + frames[3] + frames[4])
        # A frame a byte at a time (a decode call per byte), then a ping
        # and a frame in one write.
        cut = frame(1, "geteilt \u00fc".encode())
        for i in range(len(cut)):
            raw.send(cut[i:i + 1])
            await asyncio.sleep(0.002)
        raw.send(frame(9, b"mid") + frame(2, b"last"))
        expected = list(zip(ops, msgs)) + [(1, "geteilt \u00fc".encode()),
                                           (2, b"last")]
        # Echoes come in order from the sender thread; the pong comes
        # from the receive loop, so anywhere among them.
        data, pongs = [], []
        for i in range(len(expected) + 1):
            fin, got_op, got = raw.read_frame()
            check(fin, "frame %d without FIN" % i)
            (pongs if got_op == 10 else data).append((got_op, got))
        check(pongs == [(10, b"mid")], "pongs: %r" % pongs)
        for i, ((op, m), (got_op, got)) in enumerate(zip(expected, data)):
            check(got_op == op and got == m,
                  "echo %d: opcode %d, %d bytes; expected opcode %d, %d "
                  "bytes" % (i, got_op, len(got), op, len(m)))
        raw.send(frame(8, struct.pack("!H", 1000)))
        raw.expect_close(1000)
    finally:
        raw.close()
    env["echoes_expected"] += 7


@test("a close without a code is answered with one without a code")
async def empty_close(env):
    raw = Raw(env)
    try:
        raw.send(frame(8, b""))
        fin, op, payload = raw.read_frame()
        check(fin and op == 8 and payload == b"",
              "answered opcode %d with %r" % (op, payload))
        check(raw.sock.recv(1) == b"", "no EOF after the close")
    finally:
        raw.close()


BAD_INPUT = [
    ("invalid UTF-8 in a text frame", frame(1, b"ok \xc3\x28"), 1007),
    ("a surrogate in a text frame", frame(1, b"\xed\xa0\x80"), 1007),
    ("an unmasked frame", frame(2, b"bare", mask=False), 1002),
    ("a reserved bit without an extension", frame(2, b"x", rsv=4), 1002),
    ("a reserved opcode", frame(3, b"x"), 1002),
    ("a fragmented ping", frame(9, b"x", fin=False), 1002),
    ("a continuation with nothing to continue", frame(0, b"x"), 1002),
]


def bad_input_tests():
    for what, data, code in BAD_INPUT:
        async def fn(env, data=data, code=code):
            raw = Raw(env)
            try:
                # A good message first: the stream worked until then.
                # Its echo is awaited, since the echo comes from another
                # thread than the close, which the error would let
                # overtake it (a connection that fails drops what it had
                # still to send).
                raw.send(frame(1, b"fine"))
                fin, op, got = raw.read_frame()
                check(op == 1 and got == b"fine", "no echo before the error")
                raw.send(data)
                raw.expect_close(code)
            finally:
                raw.close()
            env["echoes_expected"] += 1
        TESTS.append(("%s is answered with close %d" % (what, code), fn))


bad_input_tests()


@test("a client that vanishes mid-frame is cleaned up")
async def vanish(env):
    for cut in (1, 5, 40):
        raw = Raw(env)
        raw.send(frame(2, bytes(100))[:cut])
        await asyncio.sleep(0.05)
        raw.close()
    # The server must still serve.
    async with connect(env) as ws:
        await ws.send("alive")
        check_echo("alive", await recv(ws), "echo")
    env["echoes_expected"] += 1


@test("a plain HTTP request is refused with 400")
async def plain_http(env):
    s = socket.create_connection(("127.0.0.1", env["port"]), timeout=TIMEOUT)
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        check(data.startswith(b"HTTP/1.1 400"), "answered %r" % data[:40])
    finally:
        s.close()


STATS = re.compile(r"cxx_server: (\d+) upgrades, (\d+) sockets given back, "
                   r"(\d+) messages, (\d+) echoes, .* (\d+) anomalies")


@test("shutdown: an open client gets 1001, every socket given back once")
async def shutdown(env):
    srv = env["server"]
    async with connect(env) as ws:
        await ws.send("before shutdown")
        check_echo("before shutdown", await recv(ws), "echo")
        env["echoes_expected"] += 1
        signalled = time.monotonic()
        srv.proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
            raise Failure("a message instead of the close")
        except websockets.exceptions.ConnectionClosed:
            pass
        check(ws.close_code == 1001, "close code %r" % ws.close_code)
    status, _ = srv.stop(timeout=3 * TIMEOUT)
    check(status == 0, "exit status %r (stderr below)" % status)
    print("    exited %.2f s after SIGINT" % (time.monotonic() - signalled))
    m = None
    for line in srv.stderr_text().splitlines():
        m = STATS.match(line) or m
    check(m is not None, "no counters on stderr")
    up, back, msgs, echoes, anomalies = map(int, m.groups())
    check(up == back, "%d upgrades, %d sockets given back" % (up, back))
    check(up == env["connections"], "%d upgrades for %d connections"
          % (up, env["connections"]))
    check(msgs == echoes == env["echoes_expected"],
          "%d messages, %d echoed, %d expected"
          % (msgs, echoes, env["echoes_expected"]))
    check(anomalies == 0, "%d anomalies" % anomalies)


# ---------------------------------------------------------------- main

def server_command(builddir):
    path = os.path.join(builddir, "tests", "framework", "cxx_server")
    if not VALGRIND:
        return path, []
    return os.path.join(builddir, "libtool"), [
        "--mode=execute", "valgrind", "--quiet", "--error-exitcode=99",
        "--leak-check=full", "--errors-for-leak-kinds=definite,indirect,possible",
        "--show-leak-kinds=definite,indirect,possible", path]


def cxx20_configured(builddir):
    """False when configure found no C++20 compiler (the Makefile says
    HAVE_CXX20 = no), so that a missing program is not taken for that."""
    try:
        with open(os.path.join(builddir, "Makefile")) as f:
            for line in f:
                if line.startswith("HAVE_CXX20 ="):
                    return line.split("=", 1)[1].strip() == "yes"
    except OSError:
        pass
    return True


async def run(builddir):
    passed = failed = 0
    if not cxx20_configured(builddir):
        print("SKIPPED: configure found no C++20 compiler, so "
              "tests/framework/cxx_server was not built")
        print("0 passed, 0 failed")
        return 0
    seed = int(os.environ.get("CXX_SERVER_SEED", random.randrange(1 << 30)))
    print("seed %d (CXX_SERVER_SEED=%d repeats it)%s"
          % (seed, seed, ", server under valgrind" if VALGRIND else ""))
    path, args = server_command(builddir)
    try:
        srv = ExampleServer(path, args, capture_stderr=True,
                            timeout=5 * SLOW)
    except Failure as e:
        print("FAIL: the server did not start: %s" % e)
        print("0 passed, 1 failed")
        return 1
    env = {"server": srv, "port": srv.port, "url": srv.url,
           "rng": random.Random(seed), "connections": 0,
           "echoes_expected": 0}
    try:
        first = srv.stderr_text().splitlines()
        version = next((line for line in first if "libmicrohttpd" in line),
                       "(no version line)")
        print(version)
        want = os.environ.get("EXPECT_MHD_VERSION")
        if want:
            if ("libmicrohttpd %s " % want) in version:
                passed += 1
                print("PASS: the server runs on libmicrohttpd %s" % want)
            else:
                failed += 1
                print("FAIL: the server does not run on libmicrohttpd %s"
                      % want)
        for name, fn in TESTS:
            start = time.monotonic()
            try:
                await asyncio.wait_for(fn(env), 30 * TIMEOUT)
                passed += 1
                print("PASS: %s (%.2f s)" % (name, time.monotonic() - start))
            except Exception as e:  # noqa: BLE001 -- every failure counts
                failed += 1
                print("FAIL: %s: %s" % (name, str(e) or type(e).__name__))
                if not isinstance(e, Failure):
                    traceback.print_exc(file=sys.stdout)
            if srv.proc.poll() is not None and name != TESTS[-1][0]:
                failed += 1
                print("FAIL: the server exited (status %r) during: %s"
                      % (srv.proc.returncode, name))
                break
    finally:
        text = srv.stderr_text().strip()
        srv.close()
        if text:
            print("---- server stderr")
            print(text)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        print("0 passed, 1 failed")
        return 2
    return asyncio.run(run(sys.argv[1]))


if __name__ == "__main__":
    sys.exit(main())
