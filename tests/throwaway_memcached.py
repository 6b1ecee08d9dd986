"""Private memcached servers the tests own, on free ports.

`memcached_server` (one per test session) backs the cache suites' memcached runs, each test
under its own key prefix; `throwaway_memcached` (one per test) is for fault tests, which
kill, restart and stall it. Without the binary the tests are skipped, or fail under CI.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .services import require_program
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


def _running_memcached() -> Iterator[ThrowawayMemcached]:
    require_program("memcached", " (apt-get install memcached)")
    server = ThrowawayMemcached()
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[ThrowawayMemcached]:
    yield from _running_memcached()


@pytest.fixture
def throwaway_memcached() -> Iterator[ThrowawayMemcached]:
    yield from _running_memcached()
