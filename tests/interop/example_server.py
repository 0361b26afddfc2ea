"""Shared by the Python peer tests: the example servers as processes.

An example (examples/websocket, echo, chatserver) takes its port as its
last argument, 0 for any free port, and prints
"Serving on http://127.0.0.1:PORT/" as its first line (and
"libmicrohttpd VERSION" as its second); ExampleServer starts one, reads
the first line within a time bound, and stops the process by its PID
however the test ends.
"""

import ctypes
import os
import select
import signal
import subprocess
import tempfile
import time

URL_PREFIX = "Serving on http://127.0.0.1:"
TLS_URL_PREFIX = "Serving on https://127.0.0.1:"


class Failure(Exception):
    """A check that did not hold; the test that raised it fails."""


def mhd_version(builddir):
    """The version of the libmicrohttpd that examples/echo loads (its
    MHD_get_version())."""
    real = os.path.join(builddir, "examples", ".libs", "echo")
    if not os.path.exists(real):
        real = os.path.join(builddir, "examples", "echo")
    out = subprocess.run(["ldd", real], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "libmicrohttpd.so" in line and "=>" in line:
            lib = ctypes.CDLL(line.split("=>")[1].split()[0])
            lib.MHD_get_version.restype = ctypes.c_char_p
            return lib.MHD_get_version().decode()
    raise Failure("echo does not load libmicrohttpd:\n" + out)


def slow_tls_relay(builddir):
    """libmicrohttpd 0.9.x relays an upgraded TLS connection through an
    8-byte buffer whatever the pool (examples/common/daemon.c,
    ex_tls_pool_size): a MiB over wss:// takes seconds there."""
    return mhd_version(builddir).startswith("0.")


def sanitizers(builddir):
    """The sanitizers examples/echo was built with: a set of "asan" and
    "tsan" (empty for a plain build), read from the binary's own
    runtime symbols rather than from the configure line."""
    real = os.path.join(builddir, "examples", ".libs", "echo")
    if not os.path.exists(real):
        real = os.path.join(builddir, "examples", "echo")
    with open(real, "rb") as f:
        data = f.read()
    return {name for name, mark in (("asan", b"__asan_init"),
                                    ("tsan", b"__tsan_init"))
            if mark in data}


def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1: (cert, key) PEM files."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=127.0.0.1"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def check(cond, message):
    if not cond:
        raise Failure(message)


class ExampleServer:
    """One example server process, on a port it picked itself.

    With capture_stderr the server's stderr goes to a temporary file that
    stderr_text() returns (for tests that judge what it logged);
    otherwise it goes to ours, so sanitizer reports show in the log."""

    def __init__(self, path, args=(), port=0, env=None, capture_stderr=False,
                 timeout=5.0):
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.stderr = None
        if capture_stderr:
            self.stderr = tempfile.TemporaryFile(
                mode="w+", prefix=os.path.basename(path) + ".err.")
        self.proc = subprocess.Popen([path] + list(args) + [str(port)],
                                     stdout=subprocess.PIPE,
                                     stderr=self.stderr, env=full_env)
        line = self.read_line(timeout)
        prefix = TLS_URL_PREFIX if line.startswith(TLS_URL_PREFIX) \
            else URL_PREFIX
        if not line.startswith(prefix) or not line.endswith("/"):
            self.close()
            raise Failure("%s printed %r instead of its URL" % (path, line))
        self.port = int(line[len(prefix):-1])
        self.tls = prefix == TLS_URL_PREFIX
        self.url = "%s://127.0.0.1:%d/" % ("wss" if self.tls else "ws",
                                            self.port)

    def read_line(self, timeout):
        """The server's next line on stdout ("" after `timeout` seconds)."""
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

    def stderr_text(self):
        if self.stderr is None:
            return ""
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()

    def stop(self, sig=signal.SIGINT, timeout=10.0):
        """Signals the server, then kills it after `timeout` seconds.
        Returns its exit status (None when it had to be killed) and how
        long it took to stop."""
        if self.proc.poll() is not None:
            return self.proc.returncode, 0.0
        start = time.monotonic()
        self.proc.send_signal(sig)
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None, timeout
        return status, time.monotonic() - start

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.kill()
        self.proc.stdout.close()
        if self.stderr is not None:
            self.stderr.close()
