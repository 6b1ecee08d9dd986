"""Private memcached servers the tests own, on free ports.

`memcached_server` (one per test session) backs the cache suites' memcached runs, each test
under its own key prefix; `throwaway_memcached` (one per test) is for fault tests, which
kill, restart and stall it. Without the binary the tests are skipped, or fail under CI.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from .services import running_under_ci
from .support import ThrowawayServer


class ThrowawayMemcached(ThrowawayServer):
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
        self.launch(command, b"version\r\n", b"VERSION")


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
