"""Past one process: run.py instances sharing Redis and MariaDB stay correct together."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis as sync_redis

from .server_process import ServerProcess
from .services import MYSQL_URL, REDIS_URL, forget_redis_prefix, require_service
from .support import reset_mysql_table
from .throwaway_redis import ThrowawayRedis


def wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


#: (Redis URL, key prefix) of each test's servers, for `forget_keys_afterwards`.
_used_prefixes: list[tuple[str, str]] = []


@pytest.fixture(autouse=True)
def forget_keys_afterwards() -> Iterator[None]:
    yield
    while _used_prefixes:
        forget_redis_prefix(*_used_prefixes.pop())


def shared_env(tmp_path: Path, cache_url: str, bus_url: str, cache_type: str) -> dict[str, str]:
    mysql = require_service("MariaDB", MYSQL_URL)
    reset_mysql_table(mysql)
    prefix = f"multi-{uuid.uuid4().hex[:8]}:"
    _used_prefixes.append((cache_url, prefix))
    return {
        "QUART_DATABASE_URL": mysql,
        "QUART_CACHE_TYPE": cache_type,
        "QUART_CACHE_REDIS_URL": cache_url,
        "QUART_CACHE_KEY_PREFIX": prefix,
        "QUART_SIGNALS_BUS_URL": bus_url,
        "QUART_SIGNALS_BUS_CHANNEL": f"multi-{uuid.uuid4().hex[:8]}",
        "QUART_VISITS_FLUSH_INTERVAL": "0.2",
    }


def subscribers(redis_url: str, channel: str) -> int:
    client = sync_redis.Redis.from_url(redis_url)
    try:
        return int(dict(client.pubsub_numsub(channel))[channel.encode()])
    finally:
        client.close()


def ids(base: str) -> list[int]:
    return [row["id"] for row in httpx.get(base + "/api/info?limit=100").json()["items"]]


def test_two_instances_read_each_others_writes_and_run_every_receiver_once(
    tmp_path: Path,
) -> None:
    redis = require_service("Redis", REDIS_URL)
    env = shared_env(tmp_path, redis, redis, "RedisCache")
    with ServerProcess(env=env, log_dir=tmp_path) as first, \
            ServerProcess("--workers", "2", env=env, log_dir=tmp_path) as second:
        # Every process (one, and the second instance's two workers) is on the bus.
        wait_for(lambda: subscribers(redis, env["QUART_SIGNALS_BUS_CHANNEL"]) == 3)
        assert httpx.get(second.base_url + "/readyz").json()["checks"]["signal_bus"]["ok"]
        assert ids(second.base_url) == []  # cached, empty
        for info_id in range(1, 11):
            writer, reader = (first, second) if info_id % 2 else (second, first)
            created = httpx.post(writer.base_url + "/api/info",
                                 json={"id": info_id, "name": "m", "money": "2.50"})
            assert created.status_code == 201
            assert info_id in ids(reader.base_url)  # read-your-writes across instances
        for _ in range(30):
            httpx.get(first.base_url + "/alice")
            httpx.get(second.base_url + "/alice")
        wait_for(lambda: httpx.get(first.base_url + "/api/stats/visits")
                 .json()["visits"].get("/<name>") == 60)
        assert first.stop() == 0 and second.stop() == 0
        # The audit receiver ran once per insert in each of the three processes.
        for server, processes in ((first, 1), (second, 2)):
            lines = re.findall(r"\[(\d+)\] \[INFO\] quart_app.audit: info inserted: id=(\d+)",
                               server.output())
            per_process: dict[str, list[int]] = {}
            for pid, info_id in lines:
                per_process.setdefault(pid, []).append(int(info_id))
            assert len(per_process) == processes
            for seen in per_process.values():
                assert sorted(seen) == list(range(1, 11))


@pytest.mark.parametrize("cache", ["SimpleCache", "RedisCache+local"])
def test_a_redis_restart_loses_no_invalidation_for_per_process_copies(
    tmp_path: Path, throwaway_redis: ThrowawayRedis, cache: str
) -> None:
    env = shared_env(tmp_path, throwaway_redis.url, throwaway_redis.url,
                     cache.removesuffix("+local"))
    if cache.endswith("+local"):
        env["QUART_CACHE_LOCAL"] = "true"
        env["QUART_CACHE_RETRY_INTERVAL"] = "0.2"
    with ServerProcess(env=env, log_dir=tmp_path) as first, \
            ServerProcess(env=env, log_dir=tmp_path) as second:
        wait_for(lambda: ids(second.base_url) == [])  # the bus is up and the page is cached
        assert httpx.post(first.base_url + "/api/info",
                          json={"id": 1, "name": "a", "money": 1}).status_code == 201
        wait_for(lambda: ids(second.base_url) == [1])  # the bus carried the invalidation
        throwaway_redis.kill()
        # This insert's message is lost: nobody is subscribed while Redis is down (and with
        # Redis as the cache, its invalidation too): stored, answered 503, not acknowledged.
        during = httpx.post(first.base_url + "/api/info", json={"id": 2, "name": "b", "money": 1})
        assert during.status_code == 503 and during.json()["stored"] is True
        throwaway_redis.start()
        # The second instance must not serve its old page once it is back on the bus.
        wait_for(lambda: ids(second.base_url) == [2, 1])
        assert first.stop() == 0 and second.stop() == 0


def test_local_tiers_serve_reads_and_every_instance_reads_an_insert_at_once(
    tmp_path: Path,
) -> None:
    redis = require_service("Redis", REDIS_URL)
    env = {**shared_env(tmp_path, redis, redis, "RedisCache"), "QUART_CACHE_LOCAL": "true"}
    with ServerProcess(env=env, log_dir=tmp_path) as first, \
            ServerProcess("--workers", "2", env=env, log_dir=tmp_path) as second:
        wait_for(lambda: subscribers(redis, env["QUART_SIGNALS_BUS_CHANNEL"]) == 3)
        servers = (first, second)
        for info_id in range(1, 31):
            writer, reader = servers[info_id % 2], servers[(info_id + 1) % 2]
            for _ in range(3):  # each worker of the reader copies the page
                assert ids(reader.base_url) == list(range(info_id - 1, 0, -1))
            created = httpx.post(writer.base_url + "/api/info",
                                 json={"id": info_id, "name": "m", "money": "1"})
            assert created.status_code == 201
            assert ids(reader.base_url) == list(range(info_id, 0, -1))
        for server in servers:
            bus = httpx.get(server.base_url + "/readyz").json()["checks"]["signal_bus"]
            assert bus["local_tier"]["hits"] > 0
            assert bus["local_tier"]["evictions_unconfirmed"] == 0
        assert first.stop() == 0 and second.stop() == 0
