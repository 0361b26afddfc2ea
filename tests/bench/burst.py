# This file is part of libmicrohttpd_ws.
# SPDX-License-Identifier: LGPL-2.1-or-later
"""One WebSocket client that sends FRAMES small binary frames in a single
write, waits for all their echoes, and repeats ROUNDS times (50 ms apart,
so that each burst reaches the server as one read).  The payloads start
with "burst", which tests/bench/writev-check.sh looks for in the server's
system calls.

usage: burst.py PORT FRAMES ROUNDS
"""
import base64
import os
import socket
import sys
import time


def masked(payload):
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x82, 0x80 | len(payload)]) + key + body


def main():
    port, frames, rounds = (int(a) for a in sys.argv[1:4])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(4096)
        if not data:
            sys.exit("burst.py: no handshake response")
        buf += data
    if not buf.startswith(b"HTTP/1.1 101"):
        sys.exit("burst.py: no 101 response")
    buf = buf.split(b"\r\n\r\n", 1)[1]
    payloads = [b"burst%03d" % i for i in range(frames)]
    want = b"".join(bytes([0x82, len(p)]) + p for p in payloads)
    for _ in range(rounds):
        sock.sendall(b"".join(masked(p) for p in payloads))
        while len(buf) < len(want):
            data = sock.recv(65536)
            if not data:
                sys.exit("burst.py: the server closed the connection")
            buf += data
        if buf != want:
            sys.exit("burst.py: the echoes differ from the frames sent")
        buf = b""
        time.sleep(0.05)
    sock.close()


if __name__ == "__main__":
    main()
