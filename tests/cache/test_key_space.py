"""What clients choose cannot grow the cache's keys without bound: a huge query string
still makes a short key, and a view whose response varies on a request header stores a
bounded number of variants (clients choose header values)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import redis.asyncio as redis
from quart import Quart, Response, request

from quart_app import create_app
from quart_app.cache.views import MAX_VARIANTS
from quart_app.extensions import cache

from ..services import REDIS_URL, require_service


def varying_app(cache_config: dict[str, Any], tmp_path: Path) -> tuple[Quart, Counter[str]]:
    app = create_app({**cache_config, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    runs: Counter[str] = Counter()

    @app.get("/greeting")
    @cache.cached(timeout=60)
    async def greeting() -> Response:
        language = request.headers.get("Accept-Language", "")
        runs[language] += 1
        response = Response(f"hello in {language}")
        response.headers["Vary"] = "Accept-Language"
        return response

    return app, runs


async def test_variants_beyond_the_bound_are_served_but_not_stored(
    cache_config: dict[str, Any], tmp_path: Path
) -> None:
    app, runs = varying_app(cache_config, tmp_path)
    languages = [f"x-{n}" for n in range(MAX_VARIANTS + 8)]
    async with app.test_app():
        client = app.test_client()
        statuses = []
        for language in languages:
            response = await client.get("/greeting", headers={"Accept-Language": language})
            assert await response.get_data(as_text=True) == f"hello in {language}"
            statuses.append(response.headers["Cache-Status"])
        stored = [status for status in statuses if status.endswith("stored")]
        assert len(stored) == MAX_VARIANTS
        assert all("detail" not in status for status in statuses)  # not a cache failure
        # The stored ones are hits; the ones past the bound run the view each time.
        again = await client.get("/greeting", headers={"Accept-Language": languages[0]})
        assert "hit" in again.headers["Cache-Status"]
        await client.get("/greeting", headers={"Accept-Language": languages[-1]})
        assert runs[languages[0]] == 1
        assert runs[languages[-1]] == 2


async def test_an_invalidation_makes_room_for_new_variants(
    cache_config: dict[str, Any], tmp_path: Path
) -> None:
    app, _ = varying_app(cache_config, tmp_path)
    async with app.test_app():
        client = app.test_client()

        async def status(language: str) -> str:
            response = await client.get("/greeting", headers={"Accept-Language": language})
            return response.headers["Cache-Status"]

        for n in range(MAX_VARIANTS):
            await status(f"x-{n}")
        assert not (await status("late")).endswith("stored")
        async with app.app_context():
            await cache.delete_cached(app.view_functions["greeting"])
        assert (await status("x-0")).endswith("stored")  # stale: stored again
        assert (await status("late")).endswith("stored")
        assert "hit" in await status("late")


async def test_a_huge_query_string_makes_a_short_key(key_prefix: str, tmp_path: Path) -> None:
    url = require_service("Redis", REDIS_URL)
    app = create_app({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url,
                      "CACHE_KEY_PREFIX": key_prefix,
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})

    @app.get("/search")
    @cache.cached(timeout=60)
    async def search() -> str:
        return f"{len(request.args)} arguments"

    query = "&".join(f"name{n}={'v' * 20}" for n in range(400))  # about 12 kB
    client = redis.Redis.from_url(url)
    try:
        async with app.test_app():
            response = await app.test_client().get(f"/search?{query}")
            assert await response.get_data(as_text=True) == "400 arguments"
            assert response.headers["Cache-Status"].endswith("stored")
        keys = [key async for key in client.scan_iter(match=key_prefix + "*")]
        assert keys
        assert max(len(key) for key in keys) < len(key_prefix) + 200
    finally:
        keys = [key async for key in client.scan_iter(match=key_prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
