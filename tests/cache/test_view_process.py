"""Cached views over real HTTP: `run.py` serving, httpx as the client."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
import redis

from ..server_process import ServerProcess
from ..services import REDIS_URL, require_service

VIEW_APP = "tests.cache.view_app:create_view_app()"


def env_for(tmp_path: Path, **settings: str) -> dict[str, str]:
    return {"QUART_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "QUART_CACHE_KEY_PREFIX": f"process-{uuid.uuid4().hex[:8]}:", **settings}


def test_etag_304_and_head_over_http(tmp_path: Path) -> None:
    with ServerProcess("--app", VIEW_APP, env=env_for(tmp_path), log_dir=tmp_path) as server:
        url = server.base_url + "/probe/plain"
        first = httpx.get(url)
        assert first.status_code == 200
        etag = first.headers["etag"]
        assert etag.startswith('"') and len(etag) == 34

        not_modified = httpx.get(url, headers={"If-None-Match": etag})
        assert not_modified.status_code == 304
        assert not_modified.content == b""
        assert "content-length" not in not_modified.headers
        assert "content-type" not in not_modified.headers
        assert not_modified.headers["etag"] == etag
        assert not_modified.headers["cache-status"].startswith("quart_app; hit")
        assert int(not_modified.headers["age"]) >= 0
        assert not_modified.headers["cache-control"].startswith("max-age=")

        head = httpx.head(url)
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == first.headers["content-length"]
        assert head.headers["etag"] == etag

        changed = httpx.get(url, headers={"If-None-Match": '"something-else"'})
        assert changed.status_code == 200 and changed.content == first.content
        assert server.stop() == 0


def test_info_api_revalidates_after_an_insert(tmp_path: Path) -> None:
    with ServerProcess(env=env_for(tmp_path), log_dir=tmp_path) as server:
        api = server.base_url + "/api/info"
        empty = httpx.get(api)
        etag = empty.headers["etag"]
        assert httpx.get(api, headers={"If-None-Match": etag}).status_code == 304
        assert httpx.post(api, json={"id": 1, "name": "a", "money": "1"}).status_code == 201
        after = httpx.get(api, headers={"If-None-Match": etag})
        assert after.status_code == 200
        assert [row["id"] for row in after.json()["items"]] == [1]
        assert after.headers["etag"] != etag
        assert server.stop() == 0


async def burst(url: str, count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        return await asyncio.gather(*(client.get(url) for _ in range(count)))


def test_a_hundred_misses_across_two_workers_run_the_view_once(tmp_path: Path) -> None:
    redis_url = require_service("Redis", REDIS_URL)
    env = env_for(tmp_path, QUART_CACHE_TYPE="RedisCache", QUART_CACHE_REDIS_URL=redis_url)
    prefix = env["QUART_CACHE_KEY_PREFIX"]
    shared = redis.Redis.from_url(redis_url)
    try:
        with ServerProcess("--app", VIEW_APP, "--workers", "2", env=env,
                           log_dir=tmp_path) as server:
            workers: set[str] = set()
            for _ in range(200):  # until both workers answer (a new connection each time)
                workers.add(httpx.get(server.base_url + "/healthz").headers["x-worker-pid"])
                if len(workers) == 2:
                    break
            assert len(workers) == 2

            responses = asyncio.run(burst(server.base_url + "/probe/slow?seconds=0.5", 100))
            assert {response.status_code for response in responses} == {200}
            served_by = {response.headers["x-worker-pid"] for response in responses}
            if len(served_by) < 2:
                pytest.fail("every request went to one worker: the test proved nothing")
            assert {response.json()["shared_runs"] for response in responses} == {1}
            assert shared.get(prefix + "probe-runs:slow") == b"1"
            assert server.stop() == 0
    finally:
        # Once the workers are gone: they count visits after answering.
        for key in shared.scan_iter(match=prefix + "*"):
            shared.delete(key)
        shared.close()
