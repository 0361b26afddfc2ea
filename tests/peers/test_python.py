#!/usr/bin/python3
"""Tests examples/echo against Python's websockets client.

Usage: /usr/bin/python3 tests/peers/test_python.py BUILDDIR

BUILDDIR is a built tree holding examples/echo.  The echo server is
started on a free port of 127.0.0.1 (port 0: it prints the port it got)
and stopped by its PID.  Every message is random (the seed is printed, set
PEERS_SEED to repeat a run) and every echoed byte is compared.  The client
is the `websockets` package (Debian: python3-websockets, 10.4).
Every server test runs twice: over ws://, then over wss:// (echo --cert
--key, a self-signed certificate made at run time; those checks are
named "wss: ...").  On libmicrohttpd 0.9.x, whose TLS relay moves 4
bytes at a time, the bulk checks (messages above 64 KiB) are skipped
over wss:// with a note.
The last line printed is "N passed, N failed"; the exit status is non-zero
when anything failed.
"""

import asyncio
import os
import random
import shutil
import ssl
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'interop'))
from example_server import (ExampleServer, Failure, check,  # noqa: E402
                            make_certificate, slow_tls_relay)

try:
    import websockets
    import websockets.exceptions
except ImportError:
    print("the websockets module is missing (Debian: python3-websockets; "
          "run with /usr/bin/python3)")
    print("0 passed, 1 failed")
    sys.exit(1)

TIMEOUT = 10.0
MIB = 1024 * 1024
# Around the frame length encodings (7 bit, 16 bit, 64 bit) and large.
SIZES = [0, 1, 125, 126, 127, 65535, 65536, 65537, MIB, 10 * MIB]


# ---------------------------------------------------------------- data

def make_text(rng, nbytes):
    """A str of random characters that is exactly nbytes long in UTF-8,
    with 1-, 2-, 3- and 4-byte characters mixed (no surrogates)."""
    ranges = [(0x00, 0x7F), (0x80, 0x7FF), (0x800, 0xD7FF),
              (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
    pool = []
    for lo, hi in ranges:
        pool += [chr(rng.randint(lo, hi)) for _ in range(600)]
    # Edges of each encoding length.
    pool += [chr(c) for c in (0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000,
                              0xFEFF, 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF)]
    parts = []
    left = nbytes
    while left > 8:
        chunk = "".join(rng.choices(pool, k=max(1, left // 5)))
        parts.append(chunk)
        left -= len(chunk.encode("utf-8"))
    by_len = {n: [c for c in pool if len(c.encode("utf-8")) == n]
              for n in (1, 2, 3, 4)}
    while left > 0:
        n = rng.randint(1, min(4, left))
        parts.append(rng.choice(by_len[n]))
        left -= n
    text = "".join(parts)
    assert len(text.encode("utf-8")) == nbytes
    return text


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def check_echo(sent, got, what):
    check(type(got) is type(sent),
          "%s came back as %s" % (what, type(got).__name__))
    if got != sent:
        if isinstance(sent, str):
            sent, got = sent.encode("utf-8"), got.encode("utf-8")
        raise Failure("%s: sent %d bytes, got %d, first difference at "
                      "byte %d" % (what, len(sent), len(got),
                                   first_difference(sent, got)))


# ---------------------------------------------------------------- server

# The pass under way: () over ws://, ("--cert", C, "--key", K) over wss://.
TLS_ARGS = ()


def Server(path, args=()):
    """examples/echo on a free port, with TLS in the wss:// pass; its
    stderr (sanitizer reports included) goes to ours."""
    return ExampleServer(path, list(TLS_ARGS) + list(args))


def client_tls():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(url, **kw):
    if url.startswith("wss:"):
        kw.setdefault("ssl", client_tls())
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", TIMEOUT)
    kw.setdefault("close_timeout", TIMEOUT)
    kw.setdefault("max_size", None)
    kw.setdefault("max_queue", None)
    return websockets.connect(url, **kw)


async def recv(ws, timeout=TIMEOUT):
    return await asyncio.wait_for(ws.recv(), timeout)


# ---------------------------------------------------------------- tests

TESTS = []
# Names of tests that run over ws:// only (raw sockets, examples/client),
# and of bulk tests (messages above 64 KiB), skipped over wss:// where
# the TLS relay is slow.
WS_ONLY = set()
BULK = set()


def test(name, timeout=60, bulk=False, ws_only=False):
    def register(fn):
        TESTS.append((name, fn, timeout))
        if bulk:
            BULK.add(name)
        if ws_only:
            WS_ONLY.add(name)
        return fn
    return register


def size_tests(kind):
    for size in SIZES:
        name = "%s message of %d bytes is echoed" % (kind, size)

        async def fn(env, size=size):
            rng = env["rng"]
            msg = make_text(rng, size) if kind == "text" \
                else rng.randbytes(size)
            async with connect(env["echo"].url) as ws:
                await ws.send(msg)
                got = await recv(ws, 30)
                check_echo(msg, got, "%s of %d bytes" % (kind, size))
        TESTS.append((name, fn, 60))
        if size > 65537:
            BULK.add(name)


size_tests("text")
size_tests("binary")


@test("many messages on one connection, in order", bulk=True)
async def many_in_order(env):
    rng = env["rng"]
    msgs = []
    for i in range(200):
        n = rng.choice([0, 1, 7, 125, 126, 127, 1000, 65535, 65536, 70000])
        msgs.append(make_text(rng, n) if i % 2 else rng.randbytes(n))
    async with connect(env["echo"].url) as ws:
        async def sender():
            for m in msgs:
                await ws.send(m)
        task = asyncio.ensure_future(sender())
        for i, m in enumerate(msgs):
            check_echo(m, await recv(ws), "message %d" % i)
        await task


@test("fragmented text message is echoed whole")
async def fragmented_text(env):
    rng = env["rng"]
    frags = [make_text(rng, n) for n in (1, 0, 125, 126, 65536, 3, 70000)]
    async with connect(env["echo"].url) as ws:
        await ws.send(frags)
        check_echo("".join(frags), await recv(ws), "fragmented text")


@test("fragmented binary message is echoed whole")
async def fragmented_binary(env):
    rng = env["rng"]
    frags = [rng.randbytes(n) for n in (65537, 0, 1, 125, 500000, 126)]
    async with connect(env["echo"].url) as ws:
        await ws.send(frags)
        check_echo(b"".join(frags), await recv(ws), "fragmented binary")


@test("many small fragments (1000 x 1 byte) are echoed whole")
async def many_fragments(env):
    rng = env["rng"]
    frags = [rng.randbytes(1) for _ in range(1000)]
    async with connect(env["echo"].url) as ws:
        await ws.send(frags)
        check_echo(b"".join(frags), await recv(ws), "1000 fragments")


@test("ping between fragments is answered; the message stays whole")
async def ping_between_fragments(env):
    rng = env["rng"]
    frags = [make_text(rng, 300), make_text(rng, 300)]
    async with connect(env["echo"].url) as ws:
        pongs = []

        async def fragments():
            yield frags[0]
            # A control frame in the middle of a fragmented message
            # (RFC 6455 5.4); the pong must come back before the echo.
            pongs.append(await ws.ping(b"mid-message"))
            await asyncio.sleep(0.05)
            yield frags[1]
        await ws.send(fragments())
        check_echo("".join(frags), await recv(ws), "interrupted message")
        check(pongs[0].done(), "the pong did not come before the echo")


@test("ping with a payload gets a pong with the same payload")
async def ping_payloads(env):
    rng = env["rng"]
    async with connect(env["echo"].url) as ws:
        for payload in (b"", b"x", rng.randbytes(64), rng.randbytes(125)):
            waiter = await ws.ping(payload)
            # websockets resolves the waiter only for a pong whose payload
            # equals the ping's.
            try:
                await asyncio.wait_for(waiter, TIMEOUT)
            except asyncio.TimeoutError:
                raise Failure("no pong for a %d-byte ping" % len(payload))
        # And the connection still echoes afterwards.
        await ws.send("after pings")
        check_echo("after pings", await recv(ws), "message after pings")


@test("close with code and reason is echoed")
async def close_code_reason(env):
    reason = "bye \u00e9\u20ac\U0001F44B"
    ws = await connect(env["echo"].url)
    await ws.close(code=4321, reason=reason)
    check(ws.close_code == 4321, "close code %r" % ws.close_code)
    check(ws.close_reason == reason,
          "close reason %r, sent %r" % (ws.close_reason, reason))


@test("close with 1000 and no reason is echoed")
async def close_normal(env):
    ws = await connect(env["echo"].url)
    await ws.send(b"\x00")
    check_echo(b"\x00", await recv(ws), "message before close")
    await ws.close()
    check(ws.close_code == 1000, "close code %r" % ws.close_code)
    check(ws.close_reason == "", "close reason %r" % ws.close_reason)


@test("close with a 123-byte reason (the maximum) is echoed")
async def close_long_reason(env):
    reason = "\u00e9" * 61 + "x"  # 123 bytes of UTF-8
    ws = await connect(env["echo"].url)
    await ws.close(code=3000, reason=reason)
    check(ws.close_code == 3000, "close code %r" % ws.close_code)
    check(ws.close_reason == reason, "close reason %r" % ws.close_reason)


@test("8 concurrent connections each get their own echoes", bulk=True)
async def concurrent(env):
    rng = env["rng"]

    async def client(k):
        local = random.Random(rng.random())
        msgs = []
        for i in range(25):
            n = local.choice([0, 1, 126, 3000, 65536, 200000])
            msgs.append(make_text(local, n) if (i + k) % 2
                        else local.randbytes(n))
        async with connect(env["echo"].url) as ws:
            async def sender():
                for m in msgs:
                    await ws.send(m)
            task = asyncio.ensure_future(sender())
            for i, m in enumerate(msgs):
                check_echo(m, await recv(ws, 30),
                           "client %d message %d" % (k, i))
            await task
            await ws.close(code=4000 + k)
            check(ws.close_code == 4000 + k,
                  "client %d close code %r" % (k, ws.close_code))

    await asyncio.gather(*[client(k) for k in range(8)])


@test("message at the -m limit is echoed, one byte more is closed 1009")
async def max_payload(env):
    rng = env["rng"]
    srv = Server(env["echo_path"], ["-m", "1000"])
    try:
        async with connect(srv.url) as ws:
            msg = rng.randbytes(1000)
            await ws.send(msg)
            check_echo(msg, await recv(ws), "1000-byte message")
            frags = [make_text(rng, 500), make_text(rng, 500)]
            await ws.send(frags)
            check_echo("".join(frags), await recv(ws),
                       "1000 bytes in fragments")
        ws = await connect(srv.url)
        await ws.send(rng.randbytes(1001))
        try:
            got = await recv(ws)
            raise Failure("a 1001-byte message came back (%d bytes)"
                          % len(got))
        except websockets.exceptions.ConnectionClosed:
            pass
        check(ws.close_code == 1009, "close code %r" % ws.close_code)
        ws = await connect(srv.url)
        await ws.send([make_text(rng, 600), make_text(rng, 401)])
        try:
            await recv(ws)
            raise Failure("a 1001-byte fragmented message came back")
        except websockets.exceptions.ConnectionClosed:
            pass
        check(ws.close_code == 1009,
              "fragmented: close code %r" % ws.close_code)
    finally:
        status, _ = srv.stop()
        srv.close()
    check(status == 0, "echo -m 1000 exit status %r" % status)


# ---------------------------------------------------------------- deflate

# permessage-deflate (RFC 7692) both ways.  websockets compresses every
# message it sends once the extension is agreed.
from websockets.extensions.permessage_deflate import (  # noqa: E402
    ClientPerMessageDeflateFactory, ServerPerMessageDeflateFactory)
import json  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import zlib  # noqa: E402

DEFLATE_SETTINGS = [
    ("defaults", {}),
    ("client_max_window_bits=9", {"client_max_window_bits": 9}),
    ("no context takeover", {"server_no_context_takeover": True,
                             "client_no_context_takeover": True}),
    ("server_max_window_bits=10", {"server_max_window_bits": 10}),
    ("all four", {"server_no_context_takeover": True,
                  "client_no_context_takeover": True,
                  "server_max_window_bits": 9,
                  "client_max_window_bits": 9}),
]
DEFLATE_SIZES = [0, 1, 5, 125, 300, 4096, 70000, MIB]


def chat_json(rng, i):
    return json.dumps({"type": "message", "room": "general",
                       "user": "user%d" % rng.randrange(50),
                       "text": "message %d %s" % (i, "x" * rng.randrange(100)),
                       "ts": 1700000000 + i})


async def deflate_roundtrips(ws, rng, what):
    for size in DEFLATE_SIZES:
        for msg in (make_text(rng, size), rng.randbytes(size)):
            await ws.send(msg)
            check_echo(msg, await recv(ws, 30), "%s: %d bytes" % (what, size))
    frags = [make_text(rng, n) for n in (1, 7, 5000, 70000)]
    await ws.send(frags)
    check_echo("".join(frags), await recv(ws, 30), what + ": fragmented")
    for i in range(100):
        m = chat_json(rng, i)
        await ws.send(m)
        check_echo(m, await recv(ws), what + ": chat %d" % i)


def deflate_server_tests():
    for label, kw in DEFLATE_SETTINGS:
        name = "server: websockets client with permessage-deflate (%s)" % label

        async def fn(env, kw=kw, label=label):
            factory = ClientPerMessageDeflateFactory(**kw)
            async with connect(env["echo"].url, extensions=[factory]) as ws:
                agreed = ws.response_headers.get("Sec-WebSocket-Extensions")
                check(agreed is not None
                      and agreed.startswith("permessage-deflate"),
                      "not agreed: %r" % agreed)
                check(len(ws.extensions) == 1, "extensions %r" % ws.extensions)
                await deflate_roundtrips(ws, env["rng"], label)
        TESTS.append((name, fn, 120))
        BULK.add(name)


deflate_server_tests()


@test("server: echo --no-deflate declines the offer")
async def deflate_declined(env):
    srv = Server(env["echo_path"], ["--no-deflate"])
    try:
        async with connect(srv.url) as ws:
            check(ws.response_headers.get("Sec-WebSocket-Extensions") is None,
                  "answered %r" % ws.response_headers.get(
                      "Sec-WebSocket-Extensions"))
            await ws.send("plain")
            check_echo("plain", await recv(ws), "plain")
    finally:
        srv.stop()
        srv.close()


def rss_kib(pid, field="VmHWM"):
    """The process's peak resident set (VmHWM), or another field."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise Failure("no " + field)


@test("server: 1 GiB of zeros, compressed, is refused with 1009; RSS "
      "rises at most 20 MiB", timeout=120, ws_only=True)
async def zip_bomb(env):
    # The echo's limit is 16 MiB.  The bomb is one masked frame of about
    # 1 MiB that inflates to 1 GiB.
    z = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    block = bytes(1 << 20)
    parts = [z.compress(block) for _ in range(1024)]
    parts.append(z.flush(zlib.Z_SYNC_FLUSH))
    comp = b"".join(parts)[:-4]
    mask = bytes([0x11, 0x22, 0x33, 0x44])
    key = int.from_bytes(mask * ((len(comp) + 3) // 4), "big") >> (
        8 * ((4 - len(comp) % 4) % 4))
    masked = (int.from_bytes(comp, "big") ^ key).to_bytes(len(comp), "big")
    frame = bytes([0xc2, 0x80 | 127]) + struct.pack(">Q", len(comp)) + mask \
        + masked
    srv = Server(env["echo_path"])
    try:
        before = rss_kib(srv.proc.pid)
        sock = socket.create_connection(("127.0.0.1", srv.port), TIMEOUT)
        sock.settimeout(TIMEOUT)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
        resp = b""
        while b"\r\n\r\n" not in resp:
            got = sock.recv(4096)
            check(got, "closed during the handshake")
            resp += got
        check(b"permessage-deflate" in resp, "not agreed: %r" % resp)
        rest = resp.split(b"\r\n\r\n", 1)[1]
        peak = before
        try:
            for i in range(0, len(frame), 65536):
                sock.sendall(frame[i:i + 65536])
                peak = max(peak, rss_kib(srv.proc.pid))
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the frame's end
        while len(rest) < 4:
            got = sock.recv(4096)
            check(got, "no close frame")
            rest += got
        peak = max(peak, rss_kib(srv.proc.pid))
        check(rest[0] == 0x88, "first frame %r" % rest[:4])
        code = struct.unpack(">H", rest[2:4])[0]
        check(code == 1009, "close code %d" % code)
        sock.close()
        peak = rss_kib(srv.proc.pid)  # the high-water mark says it all
        print("  zip bomb: %d bytes compressed, RSS %d KiB before, peak %d "
              "KiB (+%d KiB)" % (len(comp), before, peak, peak - before))
        check(peak - before <= 20 * 1024, "RSS rose by %d KiB" % (peak - before))
    finally:
        srv.stop()
        srv.close()


def client_mode_test(label, kw):
    name = "client: examples/client against a websockets server (%s)" % label

    async def fn(env, kw=kw, label=label):
        rng = env["rng"]
        done = asyncio.get_running_loop().create_future()
        seen = {}

        async def handler(ws, path=None):
            try:
                seen["offer"] = ws.request_headers.get(
                    "Sec-WebSocket-Extensions")
                seen["agreed"] = ws.response_headers.get(
                    "Sec-WebSocket-Extensions")
                await deflate_roundtrips(ws, rng, label)
                await ws.close(1000)
                done.set_result(True)
            except Exception as e:  # reported by the test
                if not done.done():
                    done.set_exception(e)

        async with websockets.serve(
                handler, "127.0.0.1", 0, max_size=None, ping_interval=None,
                extensions=[ServerPerMessageDeflateFactory(**kw)]) as server:
            port = server.sockets[0].getsockname()[1]
            proc = await asyncio.create_subprocess_exec(
                env["client_path"], "-e", "ws://127.0.0.1:%d/" % port,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            try:
                await asyncio.wait_for(done, 100)
                status = await asyncio.wait_for(proc.wait(), TIMEOUT)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        check(seen.get("agreed", "").startswith("permessage-deflate"),
              "offer %r, agreed %r" % (seen.get("offer"), seen.get("agreed")))
        check(status == 0, "client exit status %r" % status)
    TESTS.append((name, fn, 120))
    WS_ONLY.add(name)


for _label, _kw in DEFLATE_SETTINGS:
    client_mode_test(_label, _kw)


# ---------------------------------------------------------------- runner

def run_pass(builddir, echo_path, seed, scheme, tls_args, slow):
    """Every test over one scheme; returns (passed, failed)."""
    global TLS_ARGS
    TLS_ARGS = tls_args if scheme == "wss" else ()
    pre = "wss: " if scheme == "wss" else ""
    passed = failed = 0
    srv = None
    try:
        srv = Server(echo_path)
        for name, fn, timeout in TESTS:
            if scheme == "wss" and name in WS_ONLY:
                continue
            if scheme == "wss" and slow and name in BULK:
                print("note: skipped %s%s (libmicrohttpd 0.9.x relays TLS "
                      "4 bytes at a time)" % (pre, name))
                continue
            env = {"echo": srv, "echo_path": echo_path,
                   "client_path": os.path.join(builddir, "examples", "client"),
                   "rng": random.Random("%d %s" % (seed, name))}
            start = time.monotonic()
            try:
                asyncio.run(asyncio.wait_for(fn(env), timeout))
                print("PASS %s%s (%.2f s)" % (pre, name,
                                             time.monotonic() - start))
                passed += 1
            except Exception as e:  # any error is this test's failure
                print("FAIL %s%s: %s: %s" % (pre, name, type(e).__name__, e))
                failed += 1
            sys.stdout.flush()
        status, _ = srv.stop()
        if status == 0:
            print("PASS %secho stops cleanly on SIGINT" % pre)
            passed += 1
        else:
            print("FAIL %secho stops cleanly on SIGINT: exit status %r"
                  % (pre, status))
            failed += 1
    except Failure as e:
        print("FAIL %sserver start: %s" % (pre, e))
        failed += 1
    finally:
        if srv:
            srv.close()
    return passed, failed


def main():
    if len(sys.argv) != 2:
        print("usage: %s BUILDDIR" % sys.argv[0])
        print("0 passed, 1 failed")
        return 1
    builddir = os.path.abspath(sys.argv[1])
    echo_path = os.path.join(builddir, "examples", "echo")
    if not os.access(echo_path, os.X_OK):
        print("FAIL %s is not built" % echo_path)
        print("0 passed, 1 failed")
        return 1
    seed = int(os.environ.get("PEERS_SEED", str(int(time.time()))))
    print("seed %d (set PEERS_SEED to repeat)" % seed)
    passed = failed = 0
    tmp = tempfile.mkdtemp(prefix="peers-tls-")
    try:
        cert, key = make_certificate(tmp)
        slow = slow_tls_relay(builddir)
        for scheme in ("ws", "wss"):
            p, f = run_pass(builddir, echo_path, seed, scheme,
                            ("--cert", cert, "--key", key), slow)
            passed += p
            failed += f
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
