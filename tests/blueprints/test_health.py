"""Liveness and readiness, with the cache up and with it unreachable."""

from __future__ import annotations

from typing import Any

from quart.testing import QuartClient

from quart_app import create_app

from ..throwaway_redis import ThrowawayRedis, free_port


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
        # The seed's routes still answer: the cache just misses.
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
