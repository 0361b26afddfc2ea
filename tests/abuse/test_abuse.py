#!/usr/bin/python3
"""Abuses the example servers the way a hostile peer would.

Usage: /usr/bin/python3 tests/abuse/test_abuse.py BUILDDIR

BUILDDIR is a configured and built tree holding examples/echo and
examples/chatserver.  Each server is started on a free port of 127.0.0.1
and stopped by its PID.  Raw sockets play the attackers: frame headers
announcing 2^63-1 bytes, lengths with the top bit set, thousands of
connections that stall half-way through a frame, connections reset in the
middle of a frame, floods of pings and of 1-byte fragments, and invalid
UTF-8 at every position of a message.  Meanwhile ordinary clients (the
`websockets` package) keep echoing random messages over connections they
opened before the abuse, and every check also asserts that those echoes
stay correct, that the server is still up, and that its memory
(VmHWM/VmRSS from /proc/PID/status) stays within the stated bounds.  At
the end the echo server runs once more under valgrind with a light mix of
the same abuse and must exit without leaks or errors.

Every wait is bounded; the whole run takes about 30 seconds.  In a
sanitizer build (--enable-sanitizers) the memory figures are printed but
not held to the bounds, and the valgrind run is skipped; ABUSE_SKIP_MEMORY=1
drops the bounds in any build.  The last line printed is "N passed, N
failed"; the exit status is non-zero when anything failed.
"""

import asyncio
import base64
import hashlib
import os
import random
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

try:
    import websockets
except ImportError:
    print("the websockets module is missing (Debian: python3-websockets; "
          "run with /usr/bin/python3)")
    print("0 passed, 1 failed")
    sys.exit(1)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "interop"))
from example_server import sanitizers  # noqa: E402

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TIMEOUT = 5.0
MIB = 1024 * 1024
# With max_payload 16 MiB no abuse may make the server grow by more than
# this during a scenario...
PEAK_BOUND = 64 * MIB
# ...except that each stalled connection may hold this much: the servers
# run a thread per connection (stack pages, a 64 KiB receive buffer,
# libmicrohttpd's connection pool); about 46 KiB were measured.
PER_CONNECTION = 64 * 1024
# After the abusers left, the server must come back to within this of its
# idle RSS.  glibc keeps up to 40 MiB of thread stacks cached for reuse
# and keeps freed heap in its per-thread arenas, so "back to idle" cannot
# mean byte-exact; a second wave of stalled connections must not raise it
# further (STALL_GROWTH), which is what a per-connection leak would do.
AFTER_BOUND = 64 * MIB
STALL_GROWTH = 8 * MIB
# Sanitizer builds use several times the memory: ABUSE_SKIP_MEMORY=1
# still prints the figures but does not hold the server to the bounds.
MEMORY_CHECKS = os.environ.get("ABUSE_SKIP_MEMORY", "") != "1"
# Connections that stall half-way through a frame.  examples/echo uses
# libmicrohttpd's select()-based thread-per-connection mode, which takes
# at most FD_SETSIZE (1024) sockets; the rest are refused.
STALLERS = 2000


class Failure(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Failure(message)


# ---------------------------------------------------------------- servers

def proc_status(pid):
    values = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                values[key] = int(rest.split()[0]) * (1024 if key != "Threads"
                                                      else 1)
    return values


class Server:
    """An example server on a port it picked itself."""

    def __init__(self, argv, name, timeout=TIMEOUT):
        self.name = name
        self.err = open("/tmp/test_abuse.%d.%s.err" % (os.getpid(), name),
                        "w+")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                     stderr=self.err)
        line = self._first_line(timeout)
        prefix = "Serving on http://127.0.0.1:"
        if not line.startswith(prefix):
            self.stop()
            errors = self.stderr_text()
            self.close()
            raise Failure("%s printed %r instead of its URL: %s" %
                          (name, line, errors[-500:]))
        self.port = int(line[len(prefix):].rstrip("/"))
        self.url = "ws://127.0.0.1:%d/" % self.port
        # libtool's wrapper and `libtool --mode=execute` exec the program,
        # so this is the server's own PID.
        self.pid = self.proc.pid

    def _first_line(self, timeout):
        fd = self.proc.stdout.fileno()
        data = b""
        deadline = time.monotonic() + timeout
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 1)
            if not chunk:
                break
            data += chunk
        return data.decode("utf-8", "replace").strip()

    def alive(self):
        return self.proc.poll() is None

    def check_alive(self):
        if self.proc.poll() is not None:
            raise Failure("%s is down (exit status %s): %s" %
                          (self.name, self.proc.returncode,
                           server_errors(self)))

    def status(self):
        self.check_alive()
        try:
            values = proc_status(self.pid)
        except OSError:
            values = {}
        if "VmHWM" not in values:  # a zombie has no memory figures
            time.sleep(0.2)
            self.check_alive()
            raise Failure("no memory figures for %s" % self.name)
        return values

    def reset_peak(self):
        self.check_alive()
        # Writing 5 to clear_refs resets VmHWM to the current RSS.
        with open("/proc/%d/clear_refs" % self.pid, "w") as f:
            f.write("5")

    def stop(self, timeout=20.0):
        """SIGINT, then SIGKILL; returns the exit status (None if killed)."""
        status = None
        if self.proc.stdout.closed:
            return self.proc.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                status = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        else:
            status = self.proc.returncode
        self.proc.stdout.close()
        return status

    def stderr_text(self):
        self.err.flush()
        self.err.seek(0)
        return self.err.read()

    def close(self):
        self.stop()
        self.err.close()
        try:
            os.unlink(self.err.name)
        except OSError:
            pass


# ---------------------------------------------------------------- frames

def mask_bytes(data, key):
    if not data:
        return b""
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^
            int.from_bytes(k, "little")).to_bytes(n, "little")


def frame(opcode, payload=b"", fin=True, length=None, key=b"\x12\x34\x56\x78"):
    """A client frame; `length` overrides the announced length."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + key + mask_bytes(payload, key)


class Raw:
    """A raw client connection, upgraded to WebSocket."""

    def __init__(self, port, path="/", timeout=TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                self.sock.close()
                raise Failure("connection closed during the handshake")
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            self.sock.close()
            raise Failure("no 101 response: %r" % head[:60])
        want = base64.b64encode(hashlib.sha1(key + GUID).digest())
        if b"Sec-WebSocket-Accept: " + want not in head:
            self.sock.close()
            raise Failure("wrong Sec-WebSocket-Accept")

    def send(self, data):
        self.sock.sendall(data)

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("timed out waiting for the server")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise Failure("timed out waiting for the server")
            if not chunk:
                raise Failure("connection closed by the server")
            self.buf += chunk

    def read_frame(self, timeout=TIMEOUT):
        """Returns (opcode, fin, payload) of the next server frame."""
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        check(not b1 & 0x80, "the server sent a masked frame")
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        self._need(pos + n, deadline)
        payload = self.buf[pos:pos + n]
        self.buf = self.buf[pos + n:]
        return b0 & 0x0F, bool(b0 & 0x80), payload

    def read_close(self, timeout=TIMEOUT):
        """Skips data frames until a close frame; returns its code."""
        deadline = time.monotonic() + timeout
        while True:
            op, _, payload = self.read_frame(max(deadline - time.monotonic(),
                                                 0.01))
            if op == 8:
                return struct.unpack("!H", payload[:2])[0] if payload else None

    def reset(self):
        """Closes with SO_LINGER 0: the server sees a reset."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self):
        self.sock.close()


def expect_close(port, data, code, what, timeout=TIMEOUT):
    """Sends `data` on a fresh connection and expects close `code`."""
    c = Raw(port)
    try:
        start = time.monotonic()
        c.send(data)
        got = c.read_close(timeout)
        check(got == code, "%s: close code %s, expected %d" % (what, got, code))
        return time.monotonic() - start
    finally:
        c.close()


# ---------------------------------------------------------------- ordinary

class Ordinary:
    """Well-behaved clients echoing random messages in a thread of their
    own, over connections opened before the abuse starts."""

    def __init__(self, url, clients=3, chat=False, max_size=200000):
        self.url = url
        self.max_size = max_size
        self.clients = clients
        self.chat = chat
        self.ok = 0
        self.errors = []
        self.ready = threading.Event()
        self.stopping = False
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        if not self.ready.wait(TIMEOUT * 2):
            raise Failure("the ordinary clients could not connect")
        if self.errors:
            raise Failure("ordinary client: %s" % self.errors[0])

    def _main(self):
        asyncio.run(self._run())

    async def _one(self, ws, rng, seq):
        if self.chat:
            text = "line %d %s" % (seq, "x" * rng.randrange(0, 50))
            await ws.send(text)
            # Our own line comes back in the broadcast; skip the others.
            deadline = time.monotonic() + TIMEOUT
            while True:
                got = await asyncio.wait_for(
                    ws.recv(), max(deadline - time.monotonic(), 0.01))
                if isinstance(got, str) and ('"text":"%s"' % text) in got:
                    return
        size = rng.choice([0, 1, 125, 126, 1000, 65535, 65536, 200000])
        size = rng.randrange(0, min(size, self.max_size) + 1)
        if rng.random() < 0.5:
            msg = "".join(rng.choice("aé€😀") for _ in range(size // 4))
        else:
            msg = rng.randbytes(size)
        await ws.send(msg)
        got = await asyncio.wait_for(ws.recv(), TIMEOUT)
        if got != msg:
            raise Failure("echo differs (%d bytes sent)" % len(msg))

    async def _client(self, idx, opened):
        rng = random.Random(idx)
        try:
            async with websockets.connect(self.url, max_size=None,
                                          open_timeout=TIMEOUT,
                                          ping_interval=None) as ws:
                opened.append(idx)
                if len(opened) == self.clients:
                    self.ready.set()
                seq = 0
                while not self.stopping:
                    await self._one(ws, rng, seq)
                    seq += 1
                    self.ok += 1
                    await asyncio.sleep(0.01)
        except Exception as e:  # any failure of an ordinary client counts
            self.errors.append("%s: %r" % (type(e).__name__, e))
            self.ready.set()

    async def _run(self):
        opened = []
        await asyncio.gather(*[self._client(i, opened)
                               for i in range(self.clients)])

    def progress(self, since, wait=TIMEOUT):
        """Waits until the clients made progress since count `since`."""
        deadline = time.monotonic() + wait
        while self.ok <= since + self.clients and not self.errors:
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        check(not self.errors, "ordinary client failed: %s" %
              (self.errors[0] if self.errors else ""))
        check(self.ok > since, "ordinary clients made no progress")

    def stop(self):
        self.stopping = True
        self.thread.join(TIMEOUT * 2)


# ---------------------------------------------------------------- runner

RESULTS = {"passed": 0, "failed": 0}


def run(name, fn, *args):
    start = time.monotonic()
    try:
        note = fn(*args)
        if note == "SKIP":
            print("SKIP %s" % name)
            sys.stdout.flush()
            return
        RESULTS["passed"] += 1
        print("PASS %s (%.1f s)%s" % (name, time.monotonic() - start,
                                       (": " + note) if note else ""))
    except Exception as e:  # a crash of a check is a failed check
        RESULTS["failed"] += 1
        print("FAIL %s: %s%s" % (name, type(e).__name__ + ": "
                                 if not isinstance(e, Failure) else "", e))
    sys.stdout.flush()


def mib(n):
    return "%.1f MiB" % (n / MIB)


def server_errors(server):
    """The server's stderr without libmicrohttpd's FD_SETSIZE refusals."""
    lines = [l for l in server.stderr_text().splitlines()
             if "FD_SETSIZE" not in l]
    return "\n".join(lines[-20:])


class Env:
    """A server, its ordinary clients, and its idle memory."""

    def __init__(self, argv, name, chat=False, max_size=200000):
        self.server = Server(argv, name)
        self.ordinary = None
        try:
            self.ordinary = Ordinary(self.server.url, chat=chat,
                                     max_size=max_size)
            # Let the ordinary clients settle before taking the baseline.
            self.ordinary.progress(0)
            time.sleep(0.3)
            self.idle = self.server.status()["VmRSS"]
            self.peak = self.idle
        except BaseException:
            self.close()
            raise

    def scenario(self, fn, *args):
        """Runs one abuse with the standard assertions around it."""
        s = self.server
        s.reset_peak()
        start = s.status()["VmRSS"]
        self.extra_bound = 0
        before = self.ordinary.ok
        note = fn(self, *args)
        s.check_alive()
        self.ordinary.progress(before)
        peak = s.status()["VmHWM"]
        self.peak = max(self.peak, peak)
        bound = max(PEAK_BOUND, self.extra_bound)
        check(not MEMORY_CHECKS or peak - start <= bound,
              "peak RSS %s is more than %s above %s at the start" %
              (mib(peak), mib(bound), mib(start)))
        return ("%s; " % note if note else "") + (
            "peak RSS +%s over the start, +%s over idle" %
            (mib(peak - start), mib(peak - self.idle)))

    def close(self):
        if self.ordinary:
            self.ordinary.stop()
        self.server.close()


# ---------------------------------------------------------------- scenarios

BIG = (1 << 63) - 1


def huge_header_limited(env, code=1009):
    """2^63-1 announced under a limit: the answer comes at once."""
    worst = 0.0
    for opcode in (1, 2, 0):
        data = frame(opcode, length=BIG)
        if opcode == 0:
            data = frame(1, b"ab", fin=False) + data
        worst = max(worst, expect_close(env.server.port, data, code,
                                        "opcode %d" % opcode))
    # The header alone, no masking key yet: the length is enough.
    c = Raw(env.server.port)
    try:
        c.send(b"\x82\xff" + struct.pack("!Q", BIG))
        check(c.read_close() == code, "no %d before the masking key" % code)
    finally:
        c.close()
    check(worst < 1.0, "the close took %.2f s" % worst)
    return "close %d in %.0f ms" % (code, worst * 1000)


def huge_header_unlimited(env):
    """2^63-1 announced with no limit: memory follows the bytes sent."""
    c = Raw(env.server.port)
    sent = 0
    chunk = os.urandom(256 * 1024)
    try:
        c.send(frame(2, length=BIG)[:14])
        time.sleep(0.2)
        grown = env.server.status()["VmRSS"] - env.idle
        check(not MEMORY_CHECKS or grown < 4 * MIB,
              "a bare header cost %s" % mib(grown))
        while sent < 16 * MIB:
            c.send(chunk)
            sent += len(chunk)
        time.sleep(0.3)
        rss = env.server.status()["VmRSS"]
        # Geometric growth: at most twice what arrived, plus slack.
        check(not MEMORY_CHECKS or rss - env.idle <= 2 * sent + 8 * MIB,
              "%s for %s received" % (mib(rss - env.idle), mib(sent)))
    finally:
        c.reset()
    time.sleep(0.3)
    return "%s sent, RSS +%s" % (mib(sent), mib(rss - env.idle))


def top_bit(env):
    for length in (1 << 63, (1 << 64) - 1):
        for opcode in (1, 2):
            head = bytes([0x80 | opcode, 0xFF]) + struct.pack("!Q", length)
            expect_close(env.server.port, head + b"\x01\x02\x03\x04", 1002,
                         "length %#x" % length)
    # As in the original library, the rule is judged once the whole
    # 8-byte length field has arrived: nothing comes back before its last
    # byte, 1002 right after it (no masking key needed).
    c = Raw(env.server.port)
    try:
        c.send(b"\x82\xff\x80" + bytes(6))
        try:
            c.read_frame(timeout=0.5)
            early = "a frame"
        except Failure as e:
            early = None if "timed out" in str(e) else str(e)
        check(early is None, "before the last length byte: %s" % early)
        c.send(b"\x00")
        check(c.read_close() == 1002, "no 1002 after the last length byte")
    finally:
        c.close()


def stallers(env, count):
    """Two waves of connections that send half a frame and stall."""
    after = []
    for wave in range(2):
        note = stall_wave(env, count)
        time.sleep(1.0)
        after.append(env.server.status()["VmRSS"])
    check(not MEMORY_CHECKS or after[1] - after[0] <= STALL_GROWTH,
          "RSS after the second wave %s, after the first %s" %
          (mib(after[1]), mib(after[0])))
    return "%s; after each wave +%s, +%s" % (
        note, mib(after[0] - env.idle), mib(after[1] - env.idle))


def stall_wave(env, count):
    socks = []
    refused = 0
    s = env.server
    try:
        for i in range(count):
            try:
                c = Raw(s.port, timeout=2.0)
            except (OSError, Failure):
                refused += 1
                continue
            # Alternate: half a header, or a header and half the payload.
            if i % 2:
                c.send(frame(2, os.urandom(1000))[:600])
            else:
                c.send(b"\x81\xfe\x03")
            socks.append(c)
        time.sleep(0.5)
        st = s.status()
        held = st["VmRSS"] - env.idle
        check(len(socks) >= min(count, 900),
              "only %d of %d connections accepted" % (len(socks), count))
        # Per held connection: a thread stack, a receive buffer, a stream.
        env.extra_bound = max(env.extra_bound, len(socks) * PER_CONNECTION)
        check(not MEMORY_CHECKS or held <= max(PEAK_BOUND, env.extra_bound),
              "%d stalled connections hold %s" %
              (len(socks), mib(held)))
        # Established connections are still served while it is full.
        s.check_alive()
        env.ordinary.progress(env.ordinary.ok)
    finally:
        for c in socks:
            c.close()
    # Once they left, new clients get in again.
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            c = Raw(s.port)
            c.send(frame(1, b"back"))
            op, _, payload = c.read_frame()
            c.close()
            check(op == 1 and payload == b"back", "wrong echo after stall")
            break
        except (OSError, Failure):
            if time.monotonic() > deadline:
                raise Failure("no new connection accepted after the stall "
                              "(server %s): %s" % (
                                  "up" if s.alive() else
                                  "exited with %s" % s.proc.returncode,
                                  server_errors(s)))
            time.sleep(0.1)
    return "%d stalled (%d refused), %s held, %.1f KiB each" % (
        len(socks), refused, mib(held), held / 1024.0 / max(len(socks), 1))


def resets(env, count=300):
    """Connections reset in the middle of a frame."""
    for i in range(count):
        c = Raw(env.server.port)
        size = [200, 70000, 1 << 20][i % 3]
        data = frame(i % 2 + 1, b"a" * size)
        c.send(data[:len(data) // 2])
        c.reset()
    time.sleep(0.3)


def ping_flood(env, count=20000):
    """Pings sent as fast as possible; every pong must come back."""
    c = Raw(env.server.port)
    payloads = [os.urandom(i % 126) for i in range(count)]
    errors = []

    def writer():
        try:
            batch = []
            for p in payloads:
                batch.append(frame(9, p))
                if len(batch) == 500:
                    c.send(b"".join(batch))
                    batch = []
            c.send(b"".join(batch))
        except OSError as e:
            errors.append(e)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        for i, p in enumerate(payloads):
            op, fin, got = c.read_frame(TIMEOUT)
            check(op == 10 and fin and got == p, "pong %d differs" % i)
        t.join(TIMEOUT)
        check(not errors, "sending pings failed: %s" % errors[:1])
        c.send(frame(1, b"still here"))
        op, _, got = c.read_frame()
        check(op == 1 and got == b"still here", "no echo after the pings")
    finally:
        c.close()
    return "%d pongs" % count


def fragment_flood(env, count=100000):
    """A text message of 1-byte fragments, reassembled and echoed once."""
    c = Raw(env.server.port)
    try:
        parts = [frame(1, b"x", fin=False)]
        parts += [frame(0, b"y", fin=False)] * (count - 2)
        parts.append(frame(0, b"z"))
        data = b"".join(parts)
        errors = []

        def writer():
            try:
                c.send(data)
            except OSError as e:
                errors.append(e)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        op, fin, got = c.read_frame(TIMEOUT * 3)
        t.join(TIMEOUT)
        check(not errors, "sending failed: %s" % errors[:1])
        check(op == 1 and fin and got == b"x" + b"y" * (count - 2) + b"z",
              "the reassembled message differs")
    finally:
        c.close()
    return "%d fragments, %d wire bytes" % (count, len(data))


def fragment_flood_limited(env, limit):
    """1-byte fragments beyond a small limit: 1009 when it is crossed."""
    c = Raw(env.server.port)
    try:
        data = frame(2, b"x", fin=False) + frame(0, b"y", fin=False) * (
            limit + 100)
        c.send(data)
        check(c.read_close() == 1009, "no 1009 when fragments cross the limit")
    finally:
        c.close()


def valid_prefix(n):
    """Exactly n bytes of valid UTF-8 mixing 1- to 4-byte characters."""
    out = b""
    chars = ["é", "€", "😀", "a"]
    i = 0
    while True:
        ch = chars[i % len(chars)].encode()
        if len(out) + len(ch) > n:
            return out + b"a" * (n - len(out))
        out += ch
        i += 1


def bad_utf8_everywhere(env, length=64):
    """An invalid byte at every position of a text message: 1007."""
    port = env.server.port
    bad = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
           b"\x80"]
    checked = 0
    for pos in range(length):
        seq = bad[pos % len(bad)]
        text = valid_prefix(pos) + seq + b"b" * (length - pos)
        for fragmented in (False, True):
            if fragmented:
                cut = max(1, pos)
                data = (frame(1, text[:cut], fin=False) +
                        frame(0, text[cut:]))
            else:
                data = frame(1, text)
            expect_close(port, data, 1007, "bad UTF-8 at %d" % pos)
            checked += 1
    # A message that ends inside a character.
    expect_close(port, frame(1, b"abc\xe2\x82"), 1007, "truncated character")
    # A close reason that is not UTF-8.
    expect_close(port, frame(8, b"\x03\xe8bad\xff"), 1007, "close reason")
    return "%d messages" % (checked + 2)


def limited_sizes(env, limit):
    """Exactly the limit is echoed; one more byte is 1009."""
    c = Raw(env.server.port)
    try:
        msg = os.urandom(limit)
        c.send(frame(2, msg))
        op, _, got = c.read_frame()
        check(op == 2 and got == msg, "a message of exactly the limit failed")
    finally:
        c.close()
    expect_close(env.server.port, frame(2, os.urandom(limit + 1)), 1009,
                 "limit + 1")
    expect_close(env.server.port,
                 frame(1, b"a" * (limit // 2), fin=False) +
                 frame(0, b"b" * (limit // 2 + 1)), 1009,
                 "fragments crossing the limit")


def memory_after(env):
    """After the abusers left, memory comes back near idle."""
    deadline = time.monotonic() + 5.0
    while True:
        rss = env.server.status()["VmRSS"]
        if rss - env.idle <= AFTER_BOUND or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    check(not MEMORY_CHECKS or rss - env.idle <= AFTER_BOUND,
          "RSS %s stays %s above idle %s" % (mib(rss), mib(rss - env.idle),
                                            mib(env.idle)))
    return "idle %s, peak %s (+%s), after %s (+%s)" % (
        mib(env.idle), mib(env.peak), mib(env.peak - env.idle), mib(rss),
        mib(rss - env.idle))


# ---------------------------------------------------------------- chat

def chat_welcome(c):
    """Waits for our welcome; joins of others may come first."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        op, _, payload = c.read_frame(max(deadline - time.monotonic(), 0.01))
        if op == 1 and b'"welcome"' in payload:
            return


def chat_abuse(env):
    port = env.server.port
    for data, code, what in (
            (frame(1, length=BIG), 1009, "2^63-1 header"),
            (bytes([0x81, 0xFF]) + struct.pack("!Q", 1 << 63) + b"abcd", 1002,
             "top bit"),
            (frame(1, b"ok \xed\xa0\x80"), 1007, "surrogate"),
            (frame(1, b"x" * 4097), 1009, "above MAX_MESSAGE")):
        c = Raw(port)
        try:
            chat_welcome(c)
            c.send(data)
            got = c.read_close()
            check(got == code, "%s: close %s, expected %d" % (what, got, code))
        finally:
            c.close()
    socks = []
    try:
        for i in range(300):
            c = Raw(port, timeout=2.0)
            c.send(b"\x81\xfe\x01" if i % 2 else frame(1, b"z" * 300)[:100])
            socks.append(c)
        time.sleep(0.3)
        env.ordinary.progress(env.ordinary.ok)
    finally:
        for i, c in enumerate(socks):
            if i % 2:
                c.reset()
            else:
                c.close()
    return "4 closes, 300 stalled then reset/closed"


# ---------------------------------------------------------------- valgrind

def valgrind_run(builddir):
    """The echo server under valgrind with a light mix of the abuse."""
    vg = shutil.which("valgrind")
    check(vg is not None, "valgrind is not installed")
    if "asan" in sanitizers(builddir):
        return "SKIP"  # a sanitizer build cannot run under valgrind
    libtool = os.path.join(builddir, "libtool")
    argv = [libtool, "--mode=execute", vg, "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--error-exitcode=1", "-q",
            os.path.join(builddir, "examples", "echo"), "-m", "65536", "0"]
    server = Server(argv, "echo-valgrind", 60.0)
    try:
        port = server.port
        expect_close(port, frame(2, length=BIG), 1009, "2^63-1", 10.0)
        expect_close(port, b"\x82\xff\x80" + b"\0" * 11, 1002, "top bit",
                     10.0)
        expect_close(port, frame(1, b"ab\xffcd"), 1007, "bad UTF-8", 10.0)
        socks = []
        for i in range(20):
            c = Raw(port, timeout=10.0)
            c.send(frame(2, b"q" * 3000)[:1500])
            socks.append(c)
        for i, c in enumerate(socks):
            if i % 2:
                c.reset()
            else:
                c.close()
        c = Raw(port, timeout=10.0)
        try:
            c.send(b"".join(frame(9, bytes([i]) * (i % 126))
                            for i in range(200)))
            for i in range(200):
                op, _, got = c.read_frame(10.0)
                check(op == 10 and got == bytes([i]) * (i % 126), "bad pong")
            c.send(frame(1, b"a", fin=False) +
                   frame(0, b"b", fin=False) * 2000 + frame(0, b"c"))
            op, _, got = c.read_frame(20.0)
            check(op == 1 and got == b"a" + b"b" * 2000 + b"c",
                  "bad reassembly")
            msg = os.urandom(40000)
            c.send(frame(2, msg))
            op, _, got = c.read_frame(10.0)
            check(op == 2 and got == msg, "bad echo")
        finally:
            c.close()
        time.sleep(2.5)  # the drains of the closed connections end
    finally:
        status = server.stop(60.0)
        errors = server.stderr_text()
        server.close()
    check(status == 0, "valgrind exit status %s:\n%s" % (status,
                                                        errors[-3000:]))
    return "no leaks or errors"


# ---------------------------------------------------------------- main

def start_env(what, argv, name, **kw):
    """An Env, or None after recording a failed check."""
    try:
        return Env(argv, name, **kw)
    except Exception as e:  # reported as a failed check
        RESULTS["failed"] += 1
        print("FAIL %s starts with its ordinary clients: %s" % (what, e))
        return None


def main():
    if len(sys.argv) != 2:
        print("usage: %s BUILDDIR" % sys.argv[0])
        print("0 passed, 1 failed")
        return 1
    builddir = sys.argv[1]
    echo = os.path.join(builddir, "examples", "echo")
    chat = os.path.join(builddir, "examples", "chatserver")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, STALLERS + 200)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    stallers_count = min(STALLERS, want - 200)
    begin = time.monotonic()
    global MEMORY_CHECKS
    if "asan" in sanitizers(builddir):
        MEMORY_CHECKS = False
        print("note: sanitizer build: memory figures are printed, "
              "not held to the bounds")

    # The echo server with the default 16 MiB limit.
    env = start_env("echo -m 16 MiB", [echo, "-m", str(16 * MIB), "0"],
                    "echo")
    if env:
        try:
            run("echo: 2^63-1 header answered with 1009 at once",
                env.scenario, huge_header_limited)
            run("echo: 64-bit length with the top bit set gives 1002",
                env.scenario, top_bit)
            run("echo: %d connections stall half-way through a frame" %
                stallers_count, env.scenario, stallers, stallers_count)
            run("echo: 300 connections reset mid-frame", env.scenario, resets)
            run("echo: ping flood", env.scenario, ping_flood)
            run("echo: 1-byte fragment flood", env.scenario, fragment_flood)
            run("echo: invalid UTF-8 at every position gives 1007",
                env.scenario, bad_utf8_everywhere)
            run("echo: memory back near idle after the abuse", memory_after,
                env)
        finally:
            env.close()

    # A small limit.
    for limit in (1000,):
        env = start_env("echo -m %d" % limit, [echo, "-m", str(limit), "0"],
                        "echo-small", max_size=limit)
        if not env:
            continue
        try:
            run("echo -m %d: sizes around the limit" % limit, env.scenario,
                limited_sizes, limit)
            run("echo -m %d: 2^63-1 header gives 1009" % limit, env.scenario,
                huge_header_limited)
            run("echo -m %d: 1-byte fragments crossing the limit" % limit,
                env.scenario, fragment_flood_limited, limit)
        finally:
            env.close()

    # No limit at all: a huge header is accepted and costs what arrives.
    env = start_env("echo -m 0", [echo, "-m", "0", "0"], "echo-unlimited")
    try:
        if env:
            run("echo -m 0: 2^63-1 header costs only the bytes that arrive",
                env.scenario, huge_header_unlimited)
            run("echo -m 0: memory back near idle after the reset",
                memory_after, env)
    finally:
        if env:
            env.close()

    # The chat server (4096-byte limit, broadcasts, pings).
    env = start_env("chatserver", [chat, "0"], "chatserver", chat=True)
    try:
        if env:
            run("chatserver: oversize, top bit, bad UTF-8, stalls and resets",
                env.scenario, chat_abuse)
    finally:
        if env:
            env.close()

    run("echo under valgrind with a light abuse mix", valgrind_run, builddir)

    print("abuse run took %.0f s" % (time.monotonic() - begin))
    print("%d passed, %d failed" % (RESULTS["passed"], RESULTS["failed"]))
    return 0 if RESULTS["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
