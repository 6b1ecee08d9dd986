"""Liveness and readiness, with the cache up and with it unreachable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from quart.testing import QuartClient

from quart_app import create_app

from ..support import free_port
from ..throwaway_redis import ThrowawayRedis


async def test_healthz_is_alive(client: QuartClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert await response.get_json() == {"status": "alive"}


async def test_readyz_is_ready_when_everything_answers(client: QuartClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = await response.get_json()
    assert body["status"] == "ready"
    assert body["down"] == []
    assert body["checks"]["cache"]["ok"] is True


async def test_unreachable_redis_serves_and_readyz_names_the_cache(tmp_path: Any) -> None:
    app = create_app({
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    })
    async with app.test_app():
        client = app.test_client()
        assert (await client.get("/healthz")).status_code == 200
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.headers["Retry-After"].isdigit()
        body = await response.get_json()
        assert body["down"] == ["cache"]
        assert "redis unreachable" in body["checks"]["cache"]["error"]
        # The tutorial's routes still answer: the cache just misses.
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/get")).status_code == 404


async def test_readyz_recovers_when_redis_comes_back(
    throwaway_redis: ThrowawayRedis, tmp_path: Any
) -> None:
    app = create_app({
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": throwaway_redis.url,
        "CACHE_RETRY_INTERVAL": 0.1,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    })
    async with app.test_app():
        client = app.test_client()
        assert (await client.get("/readyz")).status_code == 200
        throwaway_redis.kill()
        assert (await client.get("/readyz")).status_code == 503
        throwaway_redis.start()
        assert (await client.get("/readyz")).status_code == 200
        await client.get("/")
        assert await (await client.get("/get")).get_data(as_text=True) == "8888"


# --- what the probes and 503s may show: no hosts, ports or paths unless DEBUG --------------


def unreachable_config(tmp_path: Path, port: int, debug: bool) -> dict[str, Any]:
    return {
        "DEBUG": debug,
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "DATABASE_URL": f"mysql://root@127.0.0.1:{port}/school",
        "DATABASE_POOL": {"connect_timeout": 1, "mincached": 0},
    }


async def shown_while_down(config: dict[str, Any]) -> tuple[str, str]:
    """The bodies of /readyz and of a refused insert, with the cache and database down."""
    app = create_app(config)
    async with app.test_app():
        client = app.test_client()
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert (await ready.get_json())["down"] == ["cache", "database"]
        insert = await client.post("/api/info", json={"name": "a", "money": 1})
        assert insert.status_code == 503
        assert insert.headers["Retry-After"].isdigit()
        return await ready.get_data(as_text=True), await insert.get_data(as_text=True)


async def test_readyz_and_503s_name_no_host_or_port(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    for body in await shown_while_down(unreachable_config(tmp_path, port, debug=False)):
        assert str(port) not in body
        assert "127.0.0.1" not in body
    # The operator still finds where it failed, in the log.
    assert any(str(port) in record.getMessage() for record in caplog.records
               if record.name == "quart_app.db")


async def test_debug_shows_where_the_database_is(tmp_path: Path) -> None:
    port = free_port()
    ready, insert = await shown_while_down(unreachable_config(tmp_path, port, debug=True))
    assert f"127.0.0.1:{port}" in ready
    assert "127.0.0.1" in insert


async def test_readyz_shows_no_sqlite_path(tmp_path: Path) -> None:
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    async with app.test_app():
        ready = await app.test_client().get("/readyz")
        assert ready.status_code == 200
        body = await ready.get_data(as_text=True)
        assert str(tmp_path) not in body
        assert (await ready.get_json())["checks"]["database"]["pool"]["backend"] == "sqlite"


async def test_an_unusable_sqlite_file_is_a_503_without_its_path(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    app = create_app({"DATABASE_URL": f"sqlite:///{blocker / 'db.sqlite3'}"})
    async with app.test_app():
        client = app.test_client()
        insert = await client.post("/api/info", json={"name": "a", "money": 1})
        assert insert.status_code == 503
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        for body in (await insert.get_data(as_text=True), await ready.get_data(as_text=True)):
            assert str(tmp_path) not in body


async def test_a_cache_503_names_no_host_or_port(tmp_path: Path) -> None:
    port = free_port()
    app = create_app({"CACHE_TYPE": "RedisCache", "CACHE_IGNORE_ERRORS": False,
                      "CACHE_REDIS_URL": f"redis://127.0.0.1:{port}/0",
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    async with app.test_app():
        response = await app.test_client().get("/get")
        assert response.status_code == 503
        body = await response.get_data(as_text=True)
        assert "unreachable" in body
        assert str(port) not in body and "127.0.0.1" not in body
