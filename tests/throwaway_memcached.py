"""Private memcached servers the tests own, on free ports.

`memcached_server` (one per test session) backs the cache suites' memcached runs, each test
under its own key prefix; `throwaway_memcached` (one per test) is for fault tests, which
kill, restart and stall it. Without the binary the tests are skipped, or fail under CI.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from .services import running_under_ci
from .throwaway_redis import free_port


class ThrowawayMemcached:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def server(self) -> str:
        """CACHE_MEMCACHED_SERVERS' entry for it."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        # -I 4m: the view tests cache a 1 MB body (memcached's default item limit is 1 MiB);
        # -c: the session's server serves every test's connection pool.
        command = ["memcached", "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64",
                   "-I", "4m", "-c", "4096"]
        if os.geteuid() == 0:
            command += ["-u", "root"]  # memcached refuses to run as root without it
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as sock:
                    sock.sendall(b"version\r\n")
                    if sock.recv(64).startswith(b"VERSION"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"throwaway memcached did not start on port {self.port}")

    def stall(self) -> None:
        """SIGSTOP: the port still accepts connections, but nothing is answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def unstall(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)  # a stalled one must still die
            self.process.kill()
            self.process.wait(10)
            self.process = None


def _require_memcached() -> None:
    if shutil.which("memcached") is None:
        reason = "memcached is not installed (apt-get install memcached)"
        if running_under_ci():
            pytest.fail(f"{reason}, and CI=true makes a missing service a failure", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[ThrowawayMemcached]:
    _require_memcached()
    server = ThrowawayMemcached()
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def throwaway_memcached() -> Iterator[ThrowawayMemcached]:
    _require_memcached()
    server = ThrowawayMemcached()
    server.start()
    try:
        yield server
    finally:
        server.kill()
