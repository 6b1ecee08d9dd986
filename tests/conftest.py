"""Fixtures a newcomer can read: `app_config`, `app` (serving), `client`, and the servers.

`app` runs the real serving lifecycle (`async with app.test_app()`), so the cache client and
the database pool are opened and closed exactly as under hypercorn. Tests that take
`cache_config` run once per cache backend: in memory, and on the real Redis (and, in
tests/cache/, on a memcached of their own).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from quart import Quart
from quart.testing import QuartClient

from quart_app import create_app

from .services import MYSQL_URL, REDIS_URL, drop_test_database, require_service
from .support import backend_config
from .throwaway_cluster import shared_cluster, throwaway_cluster  # noqa: F401  (fixtures)
from .throwaway_memcached import memcached_server, throwaway_memcached  # noqa: F401  (fixtures)
from .throwaway_redis import throwaway_redis  # noqa: F401  (a fixture, shared with every test)

__all__ = ["MYSQL_URL"]


@pytest.fixture(scope="session", autouse=True)
def own_test_database() -> Iterator[None]:
    yield
    if "QUART_APP_TEST_MYSQL_URL" not in os.environ:
        drop_test_database(MYSQL_URL)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings in the developer's shell must not leak into the tests."""
    for name in list(os.environ):
        if name.startswith("QUART_"):
            monkeypatch.delenv(name)


@pytest.fixture
def settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The path `QUART_APP_SETTINGS` names for this test: write the settings file there."""
    path = tmp_path / "settings.toml"
    monkeypatch.setenv("QUART_APP_SETTINGS", str(path))
    return path


@pytest.fixture
def redis_url() -> str:
    return require_service("Redis", REDIS_URL)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def key_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture(params=["memory", "redis"])
def cache_config(request: pytest.FixtureRequest, key_prefix: str) -> Iterator[dict[str, Any]]:
    """Cache settings for one backend (tests/cache/ adds memcached)."""
    with backend_config(request, request.param, key_prefix) as config:
        yield config


@pytest.fixture
def app_config(cache_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    return {**cache_config, "DATABASE_URL": f"sqlite:///{tmp_path / 'test.sqlite3'}"}


@pytest.fixture
async def app(app_config: dict[str, Any]) -> AsyncIterator[Quart]:
    app = create_app(app_config)
    async with app.test_app():
        yield app


@pytest.fixture
def client(app: Quart) -> QuartClient:
    return app.test_client()


@pytest.fixture(params=["hypercorn", "granian"])
def server_flags(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """run.py's flags for each server it can serve on (process tests run on both)."""
    if request.param == "granian":
        pytest.importorskip("granian")
    return ("--server", request.param)
