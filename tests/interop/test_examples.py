#!/usr/bin/python3
"""Tests the example servers against a real WebSocket client.

Usage: /usr/bin/python3 tests/interop/test_examples.py BUILDDIR

BUILDDIR is a configured and built tree holding examples/websocket and
examples/chatserver.  The servers are started on free ports of 127.0.0.1
(port 0: each prints the port it got) and stopped by their PID.  The
client side is the `websockets` package (Debian: python3-websockets) plus
a raw-socket client for what a well-behaved library will not send.
The last line printed is "N passed, N failed"; the exit status is non-zero
when anything failed.
"""

import asyncio
import base64
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from example_server import ExampleServer, Failure, check  # noqa: E402

try:
    import websockets
except ImportError:
    print("the websockets module is missing (Debian: python3-websockets; "
          "run with /usr/bin/python3)")
    print("0 passed, 1 failed")
    sys.exit(1)

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
TIMEOUT = 5.0




# ---------------------------------------------------------------- servers

def Server(path, port=0, env=None):
    return ExampleServer(path, port=port, env=env, capture_stderr=True)


# ---------------------------------------------------------------- raw client

def mask_bytes(data, key):
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def make_frame(opcode, payload=b"", fin=True, mask=True, rsv=0,
               length=None):
    """Builds a client frame; `length` may lie about the payload size."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if mask:
        key = os.urandom(4)
        return head + key + mask_bytes(payload, key)
    return head + payload


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class RawClient:
    """A minimal client over a plain socket, for exact bytes on the wire."""

    def __init__(self, port, path="/", extra=b"", rcvbuf=None,
                 headers=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        if headers is None:
            headers = {"Upgrade": "websocket", "Connection": "Upgrade",
                       "Sec-WebSocket-Key": RFC_KEY,
                       "Sec-WebSocket-Version": "13"}
        req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % (path, port)
        for k, v in headers.items():
            req += "%s: %s\r\n" % (k, v)
        req += "\r\n"
        self.sock.sendall(req.encode() + extra)
        self.status, self.headers = self._read_head()

    def _read_head(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Failure("connection closed before the response head")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        return status, headers

    def send(self, data):
        self.sock.sendall(data)

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def read_frame(self, timeout=TIMEOUT):
        """Returns (fin, opcode, payload) of the next server frame."""
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            raise Failure("the server sent a masked frame")
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
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def read_close(self, timeout=TIMEOUT):
        """Skips data frames until a close frame; returns its code."""
        deadline = time.monotonic() + timeout
        while True:
            _, opcode, payload = self.read_frame(deadline - time.monotonic())
            if opcode == 8:
                if len(payload) < 2:
                    return None
                return struct.unpack("!H", payload[:2])[0]

    def at_eof(self, timeout=TIMEOUT):
        """True when the server closes the TCP connection in time."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk  # kept for callers to inspect
        except socket.timeout:
            return False
        except OSError:
            return True

    def close(self):
        self.sock.close()


def http_request(port, request, timeout=TIMEOUT):
    """Sends raw request bytes; returns (status, headers, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(request)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                head, body = data.split(b"\r\n\r\n", 1)
                m = [l for l in head.split(b"\r\n")
                     if l.lower().startswith(b"content-length:")]
                if m and len(body) >= int(m[0].split(b":")[1]):
                    break
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines[0] else 0
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def upgrade_request(version="HTTP/1.1", method="GET", path="/", **hdrs):
    headers = {"Host": "127.0.0.1", "Upgrade": "websocket",
               "Connection": "Upgrade", "Sec-WebSocket-Key": RFC_KEY,
               "Sec-WebSocket-Version": "13"}
    for k, v in hdrs.items():
        k = k.replace("_", "-")
        if v is None:
            headers.pop(k, None)
        else:
            headers[k] = v
    req = "%s %s %s\r\n" % (method, path, version)
    for k, v in headers.items():
        req += "%s: %s\r\n" % (k, v)
    return (req + "\r\n").encode()


# ---------------------------------------------------------------- helpers

def connect(url, **kw):
    """A client connection: await it, or use it with `async with`."""
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", TIMEOUT)
    kw.setdefault("close_timeout", TIMEOUT)
    return websockets.connect(url, **kw)


async def recv_event(ws, pred, timeout=TIMEOUT):
    """Returns the first chat event matching pred, skipping others (other
    tests' clients may come and go on a shared server)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure("expected chat event did not arrive")
        msg = await asyncio.wait_for(ws.recv(), left)
        check(isinstance(msg, str), "chat event is not a text message")
        ev = json.loads(msg)
        if pred(ev):
            return ev


async def closed_with(ws, timeout=TIMEOUT):
    """Waits until the server closes ws; returns the code it sent."""
    try:
        await asyncio.wait_for(ws.wait_closed(), timeout)
    except asyncio.TimeoutError:
        raise Failure("the server did not close the connection")
    return ws.close_code


# ---------------------------------------------------------------- tests

TESTS = []


def test(group):
    def register(fn):
        TESTS.append((group, fn))
        return fn
    return register


# ---- shared checks for both servers' HTTP side

def http_checks(server_name):
    @test(server_name)
    def page_is_served_at_root(env):
        status, headers, body = http_request(
            env[server_name].port,
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        check(status == 200, "GET / gave %d" % status)
        check(headers.get("content-type", "").startswith("text/html"),
              "content type %r" % headers.get("content-type"))
        check(b"new WebSocket(" in body and b"<script>" in body,
              "the page has no WebSocket client")
        check(b"innerHTML" not in body, "the page uses innerHTML")

    @test(server_name)
    def page_script_is_valid_javascript(env):
        _, _, body = http_request(
            env[server_name].port,
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        html = body.decode("utf-8")
        start = html.index("<script>") + len("<script>")
        script = html[start:html.index("</script>")]
        path = "/tmp/test_examples.%d.js" % os.getpid()
        with open(path, "w") as f:
            f.write(script)
        try:
            out = subprocess.run(["node", "--check", path],
                                 capture_output=True, text=True, timeout=30)
        except FileNotFoundError:
            raise Failure("node is not installed")
        finally:
            os.unlink(path)
        check(out.returncode == 0, "syntax error: %s" % out.stderr[-500:])

    @test(server_name)
    def unknown_path_is_404(env):
        status, _, _ = http_request(
            env[server_name].port,
            b"GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        check(status == 404, "GET /nothing gave %d" % status)

    @test(server_name)
    def handshake_answer_has_rfc_accept_and_headers(env):
        c = RawClient(env[server_name].port)
        try:
            check(c.status == 101, "status %d" % c.status)
            check(c.headers.get("sec-websocket-accept") == RFC_ACCEPT,
                  "accept %r" % c.headers.get("sec-websocket-accept"))
            check(c.headers.get("upgrade", "").lower() == "websocket",
                  "Upgrade %r" % c.headers.get("upgrade"))
            check("upgrade" in c.headers.get("connection", "").lower(),
                  "Connection %r" % c.headers.get("connection"))
        finally:
            c.close()
        key = base64.b64encode(os.urandom(16)).decode()
        want = base64.b64encode(hashlib.sha1(
            (key + GUID).encode()).digest()).decode()
        hdrs = {"Upgrade": "websocket", "Connection": "keep-alive, Upgrade",
                "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
        c = RawClient(env[server_name].port, headers=hdrs)
        try:
            check(c.status == 101, "status %d" % c.status)
            check(c.headers.get("sec-websocket-accept") == want,
                  "accept %r for key %r, expected %r" %
                  (c.headers.get("sec-websocket-accept"), key, want))
        finally:
            c.close()

    def bad(name, expect, **kw):
        def run(env):
            status, headers, body = http_request(env[server_name].port,
                                                 upgrade_request(**kw))
            check(status in expect, "status %d, expected %s" %
                  (status, expect))
            check(len(body.strip()) > 0, "no explanation in the body")
            if status == 426:
                check(headers.get("sec-websocket-version") == "13",
                      "426 without Sec-WebSocket-Version: 13")
        run.__name__ = name
        test(server_name)(run)

    bad("missing_version_is_426", (426,), Sec_WebSocket_Version=None)
    bad("version_8_is_426", (426,), Sec_WebSocket_Version="8")
    bad("missing_key_is_400", (400,), Sec_WebSocket_Key=None)
    bad("short_key_is_400", (400,), Sec_WebSocket_Key="c2hvcnQ=")
    bad("connection_without_upgrade_is_400", (400,),
        Connection="keep-alive")
    bad("upgrade_to_other_protocol_is_400", (400,), Upgrade="h2c")
    bad("http_1_0_is_rejected", (400, 505), version="HTTP/1.0")
    bad("post_upgrade_is_rejected", (400, 405), method="POST")

    @test(server_name)
    def curl_bad_handshake_is_400_or_426(env):
        try:
            out = subprocess.run(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                 "--max-time", "5", "-H", "Upgrade: websocket",
                 "-H", "Connection: Upgrade",
                 "-H", "Sec-WebSocket-Version: 13",
                 "http://127.0.0.1:%d/" % env[server_name].port],
                capture_output=True, text=True, timeout=10)
        except FileNotFoundError:
            raise Failure("curl is not installed")
        check(out.stdout in ("400", "426"), "curl saw %r" % out.stdout)


http_checks("websocket")
http_checks("chatserver")


# ---- command line

def cli_checks(binary):
    @test(binary)
    def help_prints_usage(env):
        out = subprocess.run([env["builddir"] + "/examples/" + binary, "-h"],
                             capture_output=True, text=True, timeout=10)
        check(out.returncode == 0, "exit status %d" % out.returncode)
        check(out.stdout.startswith("usage: "), "output %r" % out.stdout)

    @test(binary)
    def bad_port_prints_usage_and_fails(env):
        for arg in ("abc", "70000", "-5", "80x"):
            out = subprocess.run(
                [env["builddir"] + "/examples/" + binary, arg],
                capture_output=True, text=True, timeout=10)
            check(out.returncode != 0, "%r accepted" % arg)
            check("usage: " in out.stderr, "%r: stderr %r" %
                  (arg, out.stderr))

    @test(binary)
    def explicit_port_is_used(env):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        srv = Server(env["builddir"] + "/examples/" + binary, port)
        try:
            check(srv.port == port, "asked %d, got %d" % (port, srv.port))
            st, _, _ = http_request(port, b"GET / HTTP/1.1\r\n"
                                    b"Host: x\r\n\r\n")
            check(st == 200, "status %d" % st)
            # Loopback only: the server must not listen on other addresses.
            addrs = [a[4][0] for a in socket.getaddrinfo(
                socket.gethostname(), None, socket.AF_INET)]
            for a in set(addrs):
                if a.startswith("127."):
                    continue
                t = socket.socket()
                t.settimeout(1)
                try:
                    check(t.connect_ex((a, port)) != 0,
                          "also reachable on %s" % a)
                finally:
                    t.close()
        finally:
            status, _ = srv.stop()
            srv.close()
        check(status == 0, "exit status %r after SIGINT" % status)


cli_checks("websocket")
cli_checks("chatserver")


# ---- echo server

@test("websocket")
async def text_is_echoed(env):
    async with connect(env["websocket"].url) as ws:
        for text in ("hello", "gr\u00fc\u00df dich \u20ac \U0001F600", ""):
            await ws.send(text)
            got = await asyncio.wait_for(ws.recv(), TIMEOUT)
            check(got == text, "sent %r, got %r" % (text, got))


@test("websocket")
async def binary_is_echoed(env):
    async with connect(env["websocket"].url) as ws:
        data = bytes(range(256)) * 3
        await ws.send(data)
        got = await asyncio.wait_for(ws.recv(), TIMEOUT)
        check(got == data, "binary echo differs")


@test("websocket")
async def large_message_is_echoed(env):
    async with connect(env["websocket"].url, max_size=None) as ws:
        text = ("0123456789abcdef\u00e9" * 20000)
        await ws.send(text)
        got = await asyncio.wait_for(ws.recv(), TIMEOUT)
        check(got == text, "large echo differs (%d vs %d chars)" %
              (len(got), len(text)))


@test("websocket")
async def fragmented_message_is_echoed_whole(env):
    async with connect(env["websocket"].url) as ws:
        await ws.send(["frag", "men", "ted \u00e9"])
        got = await asyncio.wait_for(ws.recv(), TIMEOUT)
        check(got == "fragmented \u00e9", "got %r" % got)


@test("websocket")
async def ping_is_answered_with_same_payload(env):
    async with connect(env["websocket"].url) as ws:
        waiter = await ws.ping(b"payload-123")
        try:
            await asyncio.wait_for(waiter, TIMEOUT)
        except asyncio.TimeoutError:
            raise Failure("no pong with the ping's payload")


@test("websocket")
async def close_code_is_echoed(env):
    for code in (1000, 1001, 4001, 3000):
        ws = await connect(env["websocket"].url)
        await ws.close(code=code, reason="bye")
        check(ws.close_code == code, "sent %d, got back %r" %
              (code, ws.close_code))


@test("websocket")
async def two_clients_get_their_own_echo(env):
    a = await connect(env["websocket"].url)
    b = await connect(env["websocket"].url)
    try:
        await a.send("from a")
        await b.send("from b")
        check(await asyncio.wait_for(b.recv(), TIMEOUT) == "from b", "b")
        check(await asyncio.wait_for(a.recv(), TIMEOUT) == "from a", "a")
    finally:
        await a.close()
        await b.close()


def raw_echo(env, data, expect, extra=b""):
    c = RawClient(env["websocket"].port, extra=extra)
    try:
        check(c.status == 101, "handshake status %d" % c.status)
        if data:
            c.send(data)
        for want in expect:
            fin, op, payload = c.read_frame()
            check((fin, op, payload) == want,
                  "got frame %r, expected %r" % ((fin, op, payload), want))
    finally:
        c.close()


@test("websocket")
def several_frames_in_one_packet_are_all_answered(env):
    data = (make_frame(1, b"one") + make_frame(9, b"pp")
            + make_frame(2, b"\x00two") + make_frame(1, b""))
    raw_echo(env, data, [(True, 1, b"one"), (True, 10, b"pp"),
                         (True, 2, b"\x00two"), (True, 1, b"")])


@test("websocket")
def frame_sent_with_the_handshake_is_answered(env):
    # Bytes after the request head reach the upgrade handler as extra_in.
    raw_echo(env, b"", [(True, 1, b"early"), (True, 1, b"late")],
             extra=make_frame(1, b"early") + make_frame(1, b"late"))


@test("websocket")
def frame_sent_byte_by_byte_is_answered(env):
    c = RawClient(env["websocket"].port)
    try:
        frame = make_frame(1, b"slowly \xc3\xa9") + make_frame(1, b"x" * 300)
        for i in range(len(frame)):
            c.send(frame[i:i + 1])
            if i < 40:
                time.sleep(0.005)
        check(c.read_frame() == (True, 1, b"slowly \xc3\xa9"), "first")
        check(c.read_frame() == (True, 1, b"x" * 300), "second")
    finally:
        c.close()


def raw_close_code(env, data, server="websocket"):
    c = RawClient(env[server].port)
    try:
        check(c.status == 101, "handshake status %d" % c.status)
        c.send(data)
        code = c.read_close()
        check(c.at_eof(), "the TCP connection stayed open after close")
        return code
    finally:
        c.close()


@test("websocket")
def empty_close_is_answered_with_1000(env):
    code = raw_close_code(env, make_frame(8, b""))
    check(code == 1000, "got %r" % code)


@test("websocket")
def unmasked_frame_is_closed_with_1002(env):
    code = raw_close_code(env, make_frame(1, b"hi", mask=False))
    check(code == 1002, "got %r" % code)


@test("websocket")
def rsv_bit_is_closed_with_1002(env):
    code = raw_close_code(env, make_frame(1, b"hi", rsv=4))
    check(code == 1002, "got %r" % code)


@test("websocket")
def invalid_utf8_is_closed_with_1007(env):
    code = raw_close_code(env, make_frame(1, b"ok \xc3\x28"))
    check(code == 1007, "got %r" % code)


@test("websocket")
def oversized_header_is_closed_with_1009(env):
    # The example allows 1 MiB; announce 2 MiB and send nothing more.
    code = raw_close_code(env, make_frame(2, b"", length=2 << 20))
    check(code == 1009, "got %r" % code)


@test("websocket")
def forbidden_close_code_is_closed_with_1002(env):
    code = raw_close_code(env, make_frame(8, close_payload(1005)))
    check(code == 1002, "got %r" % code)


@test("websocket")
def one_byte_close_is_closed_with_1002(env):
    code = raw_close_code(env, make_frame(8, b"\x03"))
    check(code == 1002, "got %r" % code)


@test("websocket")
def undefined_close_code_5000_is_answered_with_1002(env):
    code = raw_close_code(env, make_frame(8, close_payload(5000)))
    check(code == 1002, "got %r" % code)


@test("websocket")
def data_after_close_is_not_echoed(env):
    c = RawClient(env["websocket"].port)
    try:
        c.send(make_frame(8, close_payload(1000)) + make_frame(1, b"late"))
        fin, op, payload = c.read_frame()
        check(op == 8, "first answer has opcode %d" % op)
        check(c.at_eof(), "connection stayed open")
        check(c.buf == b"", "bytes after the close frame: %r" % c.buf)
    finally:
        c.close()


@test("websocket-shutdown")
async def sigint_closes_clients_with_1001_and_exits(env):
    srv = Server(env["builddir"] + "/examples/websocket")
    try:
        ws = await connect(srv.url)
        await ws.send("x")
        await asyncio.wait_for(ws.recv(), TIMEOUT)
        srv.proc.send_signal(signal.SIGINT)
        code = await closed_with(ws)
        check(code == 1001, "close code %r" % code)
        status, took = await asyncio.get_running_loop().run_in_executor(
            None, srv.stop)
        check(status == 0, "exit status %r" % status)
    finally:
        srv.close()


@test("websocket-shutdown")
def sigterm_with_a_stalled_client_still_exits(env):
    srv = Server(env["builddir"] + "/examples/websocket")
    c = None
    try:
        c = RawClient(srv.port, rcvbuf=4096)
        # Never read: the echo of a large frame blocks the server in send().
        c.send(make_frame(2, b"z" * 60000) * 80)
        time.sleep(0.5)
        status, took = srv.stop(signal.SIGTERM, timeout=15)
        check(status == 0, "exit status %r" % status)
        check(took < 10, "took %.1f s" % took)
    finally:
        if c:
            c.close()
        srv.close()


# ---- chat server

def is_type(t, name=None):
    return lambda ev: ev.get("type") == t and (name is None or
                                                ev.get("name") == name)


@test("chatserver")
async def welcome_uses_the_requested_name(env):
    async with connect(env["chatserver"].url + "?name=Alice%20A") as a:
        ev = await recv_event(a, is_type("welcome"))
        check(ev["name"] == "Alice A", "name %r" % ev["name"])
        check(isinstance(ev["online"], int) and ev["online"] >= 1,
              "online %r" % ev.get("online"))


@test("chatserver")
async def missing_name_gets_guest_name(env):
    async with connect(env["chatserver"].url) as a:
        ev = await recv_event(a, is_type("welcome"))
        check(ev["name"].startswith("guest") and ev["name"][5:].isdigit(),
              "name %r" % ev["name"])
    async with connect(env["chatserver"].url + "?name=%FF%FE") as a:
        ev = await recv_event(a, is_type("welcome"))
        check(ev["name"].startswith("guest"),
              "invalid UTF-8 name kept: %r" % ev["name"])
    async with connect(env["chatserver"].url + "?name=%20%01%09") as a:
        ev = await recv_event(a, is_type("welcome"))
        check(ev["name"].startswith("guest"),
              "blank name kept: %r" % ev["name"])


@test("chatserver")
async def long_name_is_cut_on_a_character_boundary(env):
    name = "\u20ac" * 20  # 60 bytes of UTF-8
    from urllib.parse import quote
    async with connect(env["chatserver"].url + "?name=" +
                             quote(name + "\n")) as a:
        ev = await recv_event(a, is_type("welcome"))
        got = ev["name"]
        check(0 < len(got.encode()) <= 24, "name %r" % got)
        check(set(got) == {"\u20ac"}, "name %r" % got)


@test("chatserver")
async def message_reaches_every_client_with_sender_name(env):
    url = env["chatserver"].url
    a = await connect(url + "?name=bcast-a")
    b = await connect(url + "?name=bcast-b")
    c = await connect(url + "?name=bcast-c")
    try:
        for ws in (a, b, c):
            await recv_event(ws, is_type("welcome"))
        await b.send("hello from b")
        for ws in (a, b, c):
            ev = await recv_event(ws, is_type("msg", "bcast-b"))
            check(ev["text"] == "hello from b", "text %r" % ev["text"])
    finally:
        for ws in (a, b, c):
            await ws.close()


@test("chatserver")
async def broadcast_reaches_members_with_and_without_compression(env):
    # The chat compresses a broadcast once, on its own, for the members
    # that agreed permessage-deflate with server_no_context_takeover and
    # a window of at least 12 bits; the others get the plain frame.
    from websockets.extensions.permessage_deflate import (
        ClientPerMessageDeflateFactory)
    url = env["chatserver"].url
    plain = await connect(url + "?name=mix-plain", compression=None)
    packed = await connect(url + "?name=mix-packed")
    small = await connect(
        url + "?name=mix-small", compression=None,
        extensions=[ClientPerMessageDeflateFactory(server_max_window_bits=10)])
    members = (plain, packed, small)
    try:
        check(plain.response_headers.get("Sec-WebSocket-Extensions") is None,
              "an extension was answered to a client that offered none")
        check(packed.response_headers.get("Sec-WebSocket-Extensions")
              == "permessage-deflate; server_no_context_takeover",
              "answer %r" % packed.response_headers.get(
                  "Sec-WebSocket-Extensions"))
        check("server_max_window_bits=10" in
              small.response_headers.get("Sec-WebSocket-Extensions", ""),
              "the small window was not agreed")
        for ws in members:
            await recv_event(ws, is_type("welcome"))
        for i, sender in enumerate(members):
            name = ("mix-plain", "mix-packed", "mix-small")[i]
            text = ("message %d from %s " % (i, name)) * 30
            await sender.send(text)
            for ws in members:
                ev = await recv_event(ws, is_type("msg", name))
                check(ev["text"] == text, "text %r" % ev["text"][:40])
    finally:
        for ws in members:
            await ws.close()


@test("chatserver")
async def message_text_survives_json_escaping(env):
    url = env["chatserver"].url
    text = ('quote " backslash \\ nl \n cr \r tab \t nul \x00 bell \x07 '
            'del \x7f </script><b>x</b> \u2028 \u00e9 \U0001F600 }{,:')
    a = await connect(url + "?name=esc-a")
    b = await connect(url + "?name=" + "esc%22%5C")
    try:
        await recv_event(a, is_type("welcome"))
        await recv_event(b, is_type("welcome"))
        await b.send(text)
        raw = None
        deadline = time.monotonic() + TIMEOUT
        while raw is None:
            msg = await asyncio.wait_for(a.recv(),
                                         deadline - time.monotonic())
            ev = json.loads(msg)  # strict JSON: raw control chars fail
            if ev.get("type") == "msg" and ev.get("name") == 'esc"\\':
                raw = msg
        check(ev["text"] == text, "text came back as %r" % ev["text"])
        for ch in "\x00\x07\n\r\t":
            check(ch not in raw, "raw control character %r in JSON" % ch)
    finally:
        await a.close()
        await b.close()


@test("chatserver-fresh")
async def joins_and_leaves_are_announced_with_counts(env):
    srv = Server(env["builddir"] + "/examples/chatserver")
    try:
        a = await connect(srv.url + "?name=first")
        ev = await recv_event(a, is_type("welcome"))
        check(ev["online"] == 1, "welcome online %r" % ev["online"])
        b = await connect(srv.url + "?name=second")
        ev = await recv_event(b, is_type("welcome"))
        check(ev["online"] == 2, "second welcome online %r" % ev["online"])
        ev = await recv_event(a, lambda e: e["type"] in ("join", "leave"))
        check(ev == {"type": "join", "name": "second", "online": 2},
              "join event %r" % ev)
        await b.close(code=4000)
        check(b.close_code == 4000, "close code %r" % b.close_code)
        ev = await recv_event(a, lambda e: e["type"] in ("join", "leave"))
        check(ev == {"type": "leave", "name": "second", "online": 1},
              "leave event %r" % ev)
        # A client that just drops its TCP connection leaves too.
        c = RawClient(srv.port, path="/?name=dropper")
        ev = await recv_event(a, is_type("join", "dropper"))
        c.close()
        ev = await recv_event(a, is_type("leave", "dropper"))
        check(ev["online"] == 1, "online %r" % ev["online"])
        await a.close()
    finally:
        status, _ = srv.stop()
        srv.close()
    check(status == 0, "exit status %r" % status)


# The chat page's script, run by node against a fake DOM and a fake
# WebSocket: it must connect to the page's own host with ?name=, show the
# events as text (innerHTML throws here), and send what is typed.
NODE_HARNESS = r"""
const vm = require('vm');
const fs = require('fs');
const script = fs.readFileSync(0, 'utf8');
const els = {};
function mk(tag) {
  const e = { tag: tag, children: [], value: '', disabled: false,
              className: '', scrollTop: 0, clientHeight: 100,
              scrollHeight: 100, _text: '' };
  Object.defineProperty(e, 'textContent', {
    get() { return this._text + this.children.map(c => c.textContent)
                                              .join(''); },
    set(v) { this._text = String(v); this.children = []; } });
  Object.defineProperty(e, 'innerHTML', {
    get() { throw new Error('innerHTML read'); },
    set(v) { throw new Error('innerHTML written'); } });
  e.appendChild = c => { e.children.push(c); return c; };
  e.focus = () => {};
  return e;
}
const document = {
  getElementById: id => els[id] || (els[id] = mk('#' + id)),
  createElement: t => mk(t),
  createTextNode: t => ({ textContent: String(t) }),
};
const sockets = [];
class WebSocket {
  constructor(url) { this.url = url; this.sent = []; this.readyState = 0;
                     sockets.push(this); }
  send(d) { this.sent.push(d); }
  close(code) { this.closedWith = code; }
}
WebSocket.OPEN = 1;
const timers = [];
const ctx = { document, WebSocket, JSON, String, Math,
              setTimeout: (fn, ms) => { timers.push({ fn, ms }); return 1; },
              clearTimeout: () => {},
              location: { protocol: 'http:', host: '127.0.0.1:1234' } };
vm.createContext(ctx);
vm.runInContext(script, ctx);
const out = {};
const scenario = process.argv[1];
if (scenario === 'acks') {
  /* A cluster server: every message is answered, and what is not
     delivered is shown as such. */
  els.name.value = 'ann';
  els.join.onclick();
  const ws = sockets[0];
  ws.readyState = 1;
  ws.onopen();
  const ev = o => ws.onmessage({ data: JSON.stringify(o) });
  const say = t => { els.text.value = t; els.form.onsubmit({ preventDefault() {} }); };
  ev({ type: 'welcome', name: 'ann', online: 3, members: ['ann', 'bo', 'cy'],
       server: 'h:1', sid: 'h:1/7', acks: true });
  ev({ type: 'join', name: 'ann', online: 3, sid: 'h:1/7' });
  say('one');
  say('two');
  say('three');
  ev({ type: 'sent', n: 1 });
  ev({ type: 'error', n: 2, text: 'no link' });
  ev({ type: 'leave', name: 'bo', online: 2 });
  out.who = els.who.textContent;
  ws.onclose({ code: 1006, reason: '' });
  out.log = els.log.children.map(c => c.textContent);
  out.classes = els.log.children.map(c => c.className);
  out.retry = timers.map(t => t.ms);
  timers[0].fn();
  out.reconnected = sockets.length === 2 && sockets[1].url;
  process.stdout.write(JSON.stringify(out));
  process.exit(0);
}
els.name.value = ' Zoë ';
els.join.onclick();
const ws = sockets[0];
out.url = ws.url;
ws.readyState = 1;
ws.onopen();
out.textEnabled = !els.text.disabled;
const ev = o => ws.onmessage({ data: JSON.stringify(o) });
ev({ type: 'welcome', name: 'Zoë', online: 2 });
ev({ type: 'join', name: 'x', online: 3 });
ev({ type: 'msg', name: '<b>bob</b>', text: '<img src=x onerror=alert(1)>' });
ev({ type: 'leave', name: 'x', online: 2 });
ws.onmessage({ data: 'not json' });
els.text.value = 'typed';
els.form.onsubmit({ preventDefault() {} });
out.sent = ws.sent;
ws.onclose({ code: 1001, reason: 'server stopped' });
out.log = els.log.children.map(c => c.textContent);
out.state = els.state.textContent;
out.joinLabel = els.join.textContent;
out.retry = timers.map(t => t.ms);
/* A close the user asked for is not retried. */
sockets.length = 0;
timers.length = 0;
els.join.onclick();
sockets[0].readyState = 1;
sockets[0].onopen();
els.join.onclick();
out.leaveCode = sockets[0].closedWith;
sockets[0].onclose({ code: 1000, reason: '' });
out.retryAfterLeave = timers.length;
process.stdout.write(JSON.stringify(out));
"""


def run_page_script(env, scenario):
    status, _, body = http_request(
        env["chatserver"].port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    check(status == 200, "status %d" % status)
    html = body.decode("utf-8")
    start = html.index("<script>") + len("<script>")
    script = html[start:html.index("</script>")]
    try:
        out = subprocess.run(["node", "-e", NODE_HARNESS, scenario],
                             input=script, capture_output=True, text=True,
                             timeout=30)
    except FileNotFoundError:
        raise Failure("node is not installed")
    check(out.returncode == 0, "node failed: %s" % out.stderr[-800:])
    return json.loads(out.stdout)


@test("chatserver")
def page_script_shows_events_as_text(env):
    res = run_page_script(env, "plain")
    check(res["url"] == "ws://127.0.0.1:1234/?name=Zo%C3%AB",
          "connected to %r" % res["url"])
    check(res["textEnabled"], "input stays disabled when connected")
    check(res["sent"] == ["typed"], "sent %r" % res["sent"])
    log = res["log"]
    check(len(log) == 5, "log %r" % log)
    check("Zoë" in log[0] and "2" in log[0], "welcome line %r" % log[0])
    check("x" in log[1] and "join" in log[1], "join line %r" % log[1])
    check(log[2] == "<b>bob</b>:<img src=x onerror=alert(1)>",
          "message line %r" % log[2])
    check("x" in log[3] and "left" in log[3], "leave line %r" % log[3])
    check("1001" in log[4], "close line %r" % log[4])
    check("1001" in res["state"] and "disconnected" in res["state"],
          "state %r" % res["state"])
    check(res["joinLabel"] == "Join", "button %r" % res["joinLabel"])
    # 1001 (going away) is retried after a short, jittered delay.
    check(len(res["retry"]) == 1 and 150 <= res["retry"][0] <= 400,
          "reconnection timers %r" % res["retry"])
    check("reconnecting" in res["state"], "state %r" % res["state"])
    check(res["leaveCode"] == 1000, "Leave closed with %r" % res["leaveCode"])
    check(res["retryAfterLeave"] == 0, "Leave was followed by a reconnection")


@test("chatserver")
def page_script_shows_what_was_not_delivered(env):
    res = run_page_script(env, "acks")
    log = res["log"]
    check(res["who"] == "2 online: ann, cy", "online list %r" % res["who"])
    # welcome, (own join skipped), failed "two", bo left, failed "three"
    # (unanswered when the connection closed), the close.
    check(len(log) == 5, "log %r" % log)
    check(log[1] == "Not delivered: two (no link)", "line %r" % log[1])
    check(res["classes"][1] == "fail", "class %r" % res["classes"][1])
    check(log[3] == "Not delivered: three (connection closed)",
          "line %r" % log[3])
    check(not any("one" in line for line in log), "log %r" % log)
    check(len(res["retry"]) == 1, "timers %r" % res["retry"])
    check(res["reconnected"] == "ws://127.0.0.1:1234/?name=ann",
          "reconnected to %r" % res["reconnected"])


@test("chatserver")
async def ping_is_answered(env):
    async with connect(env["chatserver"].url + "?name=pinger") as ws:
        waiter = await ws.ping(b"chat-ping")
        try:
            await asyncio.wait_for(waiter, TIMEOUT)
        except asyncio.TimeoutError:
            raise Failure("no pong")


@test("chatserver")
async def chat_close_code_is_echoed(env):
    ws = await connect(env["chatserver"].url + "?name=closer")
    await recv_event(ws, is_type("welcome"))
    await ws.close(code=4321)
    check(ws.close_code == 4321, "got %r" % ws.close_code)


@test("chatserver")
async def binary_message_is_closed_with_1003(env):
    ws = await connect(env["chatserver"].url + "?name=binary")
    await ws.send(b"\x01\x02")
    code = await closed_with(ws)
    check(code == 1003, "got %r" % code)


@test("chatserver")
def chat_invalid_utf8_is_closed_with_1007(env):
    code = raw_close_code(env, make_frame(1, b"\xed\xa0\x80"), "chatserver")
    check(code == 1007, "got %r" % code)


@test("chatserver")
def chat_unmasked_frame_is_closed_with_1002(env):
    code = raw_close_code(env, make_frame(1, b"x", mask=False), "chatserver")
    check(code == 1002, "got %r" % code)


@test("chatserver")
async def oversized_message_is_closed_with_1009(env):
    ws = await connect(env["chatserver"].url + "?name=big")
    await ws.send("y" * 5000)
    code = await closed_with(ws)
    check(code == 1009, "got %r" % code)


@test("chatserver")
async def message_sent_with_the_handshake_is_broadcast(env):
    a = await connect(env["chatserver"].url + "?name=early-watch")
    try:
        await recv_event(a, is_type("welcome"))
        c = RawClient(env["chatserver"].port, path="/?name=early",
                      extra=make_frame(1, b"first words"))
        try:
            ev = await recv_event(a, is_type("msg", "early"))
            check(ev["text"] == "first words", "text %r" % ev["text"])
        finally:
            c.close()
    finally:
        await a.close()


@test("chatserver-fresh")
async def silent_client_is_pinged_and_dropped(env):
    srv = Server(env["builddir"] + "/examples/chatserver",
                 env={"CHAT_PING_INTERVAL": "1", "CHAT_IDLE_TIMEOUT": "3"})
    try:
        w = await connect(srv.url + "?name=watcher")
        await recv_event(w, is_type("welcome"))
        r = RawClient(srv.port, path="/?name=mute")
        start = time.monotonic()
        saw_ping = False
        loop = asyncio.get_running_loop()
        try:
            while True:
                fin, op, payload = await loop.run_in_executor(
                    None, r.read_frame, 8.0)
                if op == 9:
                    saw_ping = True
                    break
        except (EOFError, socket.timeout):
            pass
        check(saw_ping, "the silent client got no ping")
        eof = await loop.run_in_executor(None, r.at_eof, 8.0)
        took = time.monotonic() - start
        r.close()
        check(eof, "the silent client was not dropped")
        check(took >= 2.5, "dropped after %.1f s, before the timeout" % took)
        await recv_event(w, is_type("leave", "mute"))
        # The watcher answers pings (websockets does) and must survive.
        await w.send("still here")
        ev = await recv_event(w, is_type("msg", "watcher"))
        check(ev["text"] == "still here", "text %r" % ev["text"])
        check(w.open, "the answering client was dropped")
        await w.close()
    finally:
        status, _ = srv.stop()
        srv.close()
    check(status == 0, "exit status %r" % status)


@test("chatserver-fresh")
async def stalled_client_is_dropped_and_others_continue(env):
    srv = Server(env["builddir"] + "/examples/chatserver")
    stalled = None
    try:
        a = await connect(srv.url + "?name=talker", max_queue=None)
        await recv_event(a, is_type("welcome"))
        stalled = RawClient(srv.port, path="/?name=stalled", rcvbuf=4096)
        await recv_event(a, is_type("join", "stalled"))
        chunk = "s" * 4000
        sent = 0
        got = 0
        left_seen = False
        deadline = time.monotonic() + 30

        async def reader():
            nonlocal got, left_seen
            while not (left_seen and got == sent):
                msg = await asyncio.wait_for(a.recv(), 10)
                ev = json.loads(msg)
                if ev["type"] == "msg" and ev["name"] == "talker":
                    got += 1
                elif ev["type"] == "leave" and ev["name"] == "stalled":
                    left_seen = True

        task = asyncio.ensure_future(reader())
        while not left_seen and time.monotonic() < deadline and sent < 5000:
            await a.send(chunk)
            sent += 1
            if sent % 50 == 0:
                await asyncio.sleep(0)
        try:
            await asyncio.wait_for(task, 20)
        except asyncio.TimeoutError:
            raise Failure("talker got %d of its %d messages back, "
                          "stalled dropped: %s" % (got, sent, left_seen))
        check(left_seen, "no leave for the stalled client")
        check(got == sent, "talker got %d of %d" % (got, sent))
        check("stalled" in srv.stderr_text(), "no drop message on stderr")
        await a.close()
    finally:
        if stalled:
            stalled.close()
        status, _ = srv.stop()
        srv.close()
    check(status == 0, "exit status %r" % status)


@test("chatserver-fresh")
async def sigterm_closes_clients_with_1001_and_exits(env):
    srv = Server(env["builddir"] + "/examples/chatserver")
    try:
        a = await connect(srv.url + "?name=a")
        b = await connect(srv.url + "?name=b")
        await recv_event(a, is_type("welcome"))
        await recv_event(b, is_type("welcome"))
        # A client that never answers the close frame must not hang exit.
        r = RawClient(srv.port, path="/?name=raw")
        srv.proc.send_signal(signal.SIGTERM)
        for ws in (a, b):
            code = await closed_with(ws)
            check(code == 1001, "close code %r" % code)
        status, took = await asyncio.get_running_loop().run_in_executor(
            None, srv.stop)
        r.close()
        check(status == 0, "exit status %r" % status)
        check(took < 8, "took %.1f s" % took)
    finally:
        srv.close()


# ---------------------------------------------------------------- runner

def main():
    if len(sys.argv) != 2:
        print("usage: %s BUILDDIR" % sys.argv[0])
        print("0 passed, 1 failed")
        return 1
    builddir = os.path.abspath(sys.argv[1])
    passed = failed = 0
    env = {"builddir": builddir}
    for name in ("websocket", "chatserver"):
        path = os.path.join(builddir, "examples", name)
        if not os.access(path, os.X_OK):
            print("FAIL %s is not built" % path)
            print("0 passed, 1 failed")
            return 1
    servers = []
    try:
        for name in ("websocket", "chatserver"):
            env[name] = Server(os.path.join(builddir, "examples", name))
            servers.append(env[name])
        for group, fn in TESTS:
            label = "%s: %s" % (group, fn.__name__)
            try:
                if asyncio.iscoroutinefunction(fn):
                    asyncio.run(asyncio.wait_for(fn(env), 90))
                else:
                    fn(env)
                print("PASS " + label)
                passed += 1
            except Exception as e:  # any error is this test's failure
                print("FAIL %s: %s: %s" % (label, type(e).__name__, e))
                failed += 1
            sys.stdout.flush()
        for srv in servers:
            status, _ = srv.stop()
            label = "%s: shared server stops cleanly" % (
                os.path.basename(srv.proc.args[0]))
            if status == 0:
                print("PASS " + label)
                passed += 1
            else:
                print("FAIL %s: exit status %r\n%s" %
                      (label, status, srv.stderr_text()))
                failed += 1
    except Failure as e:
        print("FAIL server start: %s" % e)
        failed += 1
    finally:
        for srv in servers:
            srv.close()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
