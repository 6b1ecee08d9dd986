"""A private redis-server the test owns, so it can be killed and restarted at will.

Never the shared server on 6379: fault tests must not disturb anyone else's data.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .services import require_program
from .support import ThrowawayServer


class ThrowawayRedis(ThrowawayServer):
    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.launch(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
                    b"PING\r\n", b"+PONG")


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    require_program("redis-server")
    server = ThrowawayRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
