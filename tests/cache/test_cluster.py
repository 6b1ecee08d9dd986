"""RedisClusterCache: its settings, and the cache, view caching and read-your-writes on a real
Redis Cluster (three throwaway masters with a replica each).

The signal bus on a cluster is in test_cluster_bus.py, failovers in test_cluster_failover.py;
the backend-parametrized suites of tests/cache run on the cluster too (`cache_config`).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from quart import Quart

from quart_app import create_app
from quart_app.cache import MISSING, CacheClient, CacheSettings
from quart_app.cache.cluster import ClusterRedisBackend
from quart_app.cache.keys import memo_keys, view_keys
from quart_app.config import as_cluster_nodes, cache_config
from quart_app.errors import ConfigError

from ..server_process import REPO, ServerProcess, clean_env
from ..support import free_port, views_are_cached_and_reads_follow_writes
from ..throwaway_cluster import ThrowawayCluster
from ..throwaway_redis import ThrowawayRedis

# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", [
    "RedisClusterCache", "rediscluster", "flask_caching.backends.RedisClusterCache",
    "flask_caching.backends.rediscluster", "flask_caching.backends.rediscache.RedisClusterCache",
])
def test_flask_caching_spellings_mean_the_cluster_cache(spelling: str) -> None:
    config = cache_config({"CACHE_TYPE": spelling, "CACHE_REDIS_CLUSTER": "n1:7000"})
    assert config["CACHE_TYPE"] == "RedisClusterCache"


def test_an_unknown_cache_type_is_told_every_backend_including_the_cluster() -> None:
    with pytest.raises(ConfigError, match="RedisSentinelCache, RedisClusterCache, "):
        cache_config({"CACHE_TYPE": "RedisClusterCach"})


@pytest.mark.parametrize(("given", "nodes"), [
    ("n1:7000,n2:7001", [("n1", 7000), ("n2", 7001)]),  # Flask-Caching's spelling
    ("n1:7000, n2:7001,", [("n1", 7000), ("n2", 7001)]),
    (["n1:7000", "[::1]:7001"], [("n1", 7000), ("::1", 7001)]),
    ([["n1", 7000], ("n2", "7001")], [("n1", 7000), ("n2", 7001)]),
])
def test_cluster_nodes_are_read_as_flask_caching_and_lists_give_them(
    given: Any, nodes: list[tuple[str, int]]
) -> None:
    config = cache_config({"CACHE_TYPE": "RedisClusterCache", "CACHE_REDIS_CLUSTER": given})
    assert config["CACHE_REDIS_CLUSTER"] == nodes


@pytest.mark.parametrize(("settings", "message"), [
    ({}, "some nodes of the cluster for RedisClusterCache"),
    ({"CACHE_REDIS_CLUSTER": "n1"}, "the port is missing"),
    ({"CACHE_REDIS_CLUSTER": "n1:0"}, "a port from 1 to 65535"),
    ({"CACHE_REDIS_CLUSTER": 7000}, "some nodes of the cluster"),
    ({"CACHE_REDIS_CLUSTER": "n1:7000", "CACHE_REDIS_DB": 2}, "a Redis Cluster has only "
                                                              "database 0"),
    ({"CACHE_REDIS_CLUSTER": "n1:7000", "SIGNALS_BUS_URL": "redis+cluster://n1/"},
     "the port is missing"),
    ({"CACHE_REDIS_CLUSTER": "n1:7000", "SIGNALS_BUS_URL": "redis+cluster://n1:7000/3"},
     "without a path"),
    ({"CACHE_REDIS_CLUSTER": "n1:7000", "CACHE_KEY_PREFIX": "shop:{eu}:"},
     "a prefix without a {hash tag}"),
    ({"CACHE_REDIS_CLUSTER": "n1:7000", "CACHE_OPTIONS": {"read_from_replicas": True}},
     "CACHE_OPTIONS.read_from_replicas = True: expected unset for RedisClusterCache: "
     "replication is asynchronous"),
    ({"CACHE_REDIS_CLUSTER": "n1:7000",
      "CACHE_OPTIONS": {"load_balancing_strategy": "round_robin"}},
     "CACHE_OPTIONS.load_balancing_strategy"),
])
def test_bad_cluster_settings_are_refused_with_the_reason(
    settings: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=message):
        create_app({"CACHE_TYPE": "RedisClusterCache",
                    "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", **settings})


def test_the_cluster_password_is_refused_in_a_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text('CACHE_TYPE = "RedisClusterCache"\n'
                             'CACHE_REDIS_CLUSTER = "n1:7000"\n'
                             'CACHE_REDIS_PASSWORD = "committed"\n')
    monkeypatch.setenv("QUART_APP_SETTINGS", str(settings_file))
    with pytest.raises(ConfigError, match="QUART_CACHE_REDIS_PASSWORD"):
        create_app()


def test_with_the_local_tier_the_bus_defaults_to_the_cluster(tmp_path: Path) -> None:
    app = create_app({"CACHE_TYPE": "RedisClusterCache", "CACHE_LOCAL": True,
                      "CACHE_REDIS_CLUSTER": "n1:7000,[::1]:7001",
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    assert app.config["SIGNALS_BUS_URL"] == "redis+cluster://n1:7000,[::1]:7001/"


# --- keys: one view in one slot, views spread -------------------------------------------------


def _slot(key: str) -> int:
    from redis.crc import key_slot

    return int(key_slot(key.encode()))


def test_an_entry_and_its_tokens_share_a_slot_and_views_spread() -> None:
    prefix = "quart_app:"
    for name in ("info.list", "info.get", "stats.visits"):
        keys = view_keys(name, prefix, "/api/info", [("limit", "5")], None)
        assert len({_slot(prefix + key) for key in (keys.entry, *keys.scopes,
                                                    keys.variant([("accept", "x")]))}) == 1
    memo = memo_keys("module.function", "abc", instance="self")
    assert len({_slot(prefix + key) for key in (memo.entry, *memo.scopes)}) == 1
    names = [f"blueprint.view_{number}" for number in range(30)]
    slots = {_slot(prefix + view_keys(name, prefix, "/", None, None).entry) for name in names}
    assert len(slots) > 20  # different views, different slots


# --- on a real cluster ------------------------------------------------------------------------


@pytest.fixture
def prefix() -> str:
    return f"cluster-{uuid.uuid4().hex[:8]}:"


def cluster_settings(cluster: ThrowawayCluster, prefix: str, **changes: Any) -> CacheSettings:
    return CacheSettings(cache_type="RedisClusterCache", key_prefix=prefix,
                         cluster_nodes=tuple(as_cluster_nodes("nodes", cluster.startup_nodes)
                                             or ()), **changes)


@pytest.fixture
async def cluster_client(
    shared_cluster: ThrowawayCluster, prefix: str
) -> AsyncIterator[CacheClient]:
    client = CacheClient(cluster_settings(shared_cluster, prefix))
    try:
        yield client
    finally:
        await client.close()


def keys_on_every_master(cluster: ThrowawayCluster, prefix: str) -> list[str]:
    """Keys (without the prefix) that land on each of the three masters."""
    found: dict[int, str] = {}
    number = 0
    while len(found) < 3:
        key = f"k{number}"
        found.setdefault(cluster.master_of(prefix + key), key)
        number += 1
    return list(found.values())


def count_on(cluster: ThrowawayCluster, port: int, pattern: str) -> int:
    node = cluster.client(port)
    try:
        return len(list(node.scan_iter(match=pattern)))
    finally:
        node.close()


async def test_the_key_value_api_works_across_masters(
    cluster_client: CacheClient, shared_cluster: ThrowawayCluster, prefix: str
) -> None:
    assert isinstance(cluster_client.backend, ClusterRedisBackend)
    keys = keys_on_every_master(shared_cluster, prefix)
    assert await cluster_client.set_many({key: [key] for key in keys}) == keys
    assert await cluster_client.get_many(*keys, "absent") == [[key] for key in keys] + [None]
    assert await cluster_client.get_dict(*keys) == {key: [key] for key in keys}
    assert await cluster_client.get("absent", MISSING) is MISSING
    assert await cluster_client.set("name", "8888")
    assert not await cluster_client.add("name", "other")
    assert await cluster_client.get("name") == "8888"
    assert await cluster_client.inc("visits") == 1
    assert await cluster_client.inc("visits", 4) == 5
    assert await cluster_client.dec("visits") == 4
    assert await cluster_client.delete_many(keys[0], "absent") == [keys[0]]
    assert not await cluster_client.has(keys[0])
    assert await cluster_client.has(keys[1])
    assert not await cluster_client.delete_if_equal("name", "other")
    assert await cluster_client.delete_if_equal("name", "8888")
    assert sorted(await cluster_client.backend.multi_get_with_ttl(  # type: ignore[attr-defined]
        [prefix + key for key in keys[1:]])) == sorted(
        (f'["{key}"]', pytest.approx(300, abs=5)) for key in keys[1:])


async def test_clear_empties_every_master_of_its_prefix_only(
    cluster_client: CacheClient, shared_cluster: ThrowawayCluster, prefix: str
) -> None:
    keys = keys_on_every_master(shared_cluster, prefix)
    other = CacheClient(cluster_settings(shared_cluster, prefix + "other-"))
    neighbour = CacheClient(cluster_settings(shared_cluster, "neighbour-" + prefix))
    try:
        await cluster_client.set_many({key: 1 for key in keys})
        await other.set_many({key: 1 for key in keys})  # under our prefix too: cleared
        await neighbour.set_many({key: 1 for key in keys})
        masters = shared_cluster.masters()
        assert sum(count_on(shared_cluster, port, prefix + "*") for port in masters) == 6
        assert all(count_on(shared_cluster, port, prefix + "*") for port in masters)
        assert await cluster_client.clear()
        assert [count_on(shared_cluster, port, prefix + "*") for port in masters] == [0, 0, 0]
        assert await neighbour.get_many(*keys) == [1, 1, 1]
    finally:
        await other.close()
        await neighbour.close()


async def test_forgetting_what_may_be_stale_keeps_the_preserved_namespaces(
    cluster_client: CacheClient, shared_cluster: ThrowawayCluster
) -> None:
    cluster_client.preserve("counter:")
    counters = [f"counter:{key}" for key in keys_on_every_master(
        shared_cluster, cluster_client.settings.key_prefix + "counter:")]
    for counter in counters:
        await cluster_client.inc(counter)
    await cluster_client.set("entry", 1)
    await cluster_client.resume()  # what a failover or a dropped clear() runs
    assert await cluster_client.get("entry") is None
    assert await cluster_client.get_many(*counters) == [1, 1, 1]


async def test_the_lease_is_taken_once_and_released_by_its_owner(
    shared_cluster: ThrowawayCluster, prefix: str
) -> None:
    first = CacheClient(cluster_settings(shared_cluster, prefix))
    second = CacheClient(cluster_settings(shared_cluster, prefix))
    try:
        assert await first.add("lease:x", "first", timeout=3.0)
        assert not await second.add("lease:x", "second", timeout=3.0)
        assert await second.has("lease:x")
        assert not await second.delete_if_equal("lease:x", "second")
        assert await first.delete_if_equal("lease:x", "first")
        assert await second.add("lease:x", "second", timeout=3.0)
    finally:
        await first.close()
        await second.close()


def cluster_app(cluster: ThrowawayCluster, tmp_path: Path, prefix: str, **extra: Any) -> Quart:
    return create_app({**cluster.app_config(prefix),
                       "DATABASE_URL": f"sqlite:///{tmp_path / 'shared.sqlite3'}", **extra})


async def test_views_are_cached_and_reads_follow_writes(
    shared_cluster: ThrowawayCluster, tmp_path: Path, prefix: str
) -> None:
    await views_are_cached_and_reads_follow_writes(cluster_app(shared_cluster, tmp_path, prefix))


def test_two_workers_on_the_cluster_read_their_writes_over_http(
    shared_cluster: ThrowawayCluster, tmp_path: Path, prefix: str
) -> None:
    """`run.py --workers 2` on the cluster with the local tier: each insert, made through
    whichever worker took the connection, is read at once through whichever takes the next."""
    env = {"QUART_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
           "QUART_CACHE_KEY_PREFIX": prefix, "QUART_CACHE_TYPE": "RedisClusterCache",
           "QUART_CACHE_REDIS_CLUSTER": shared_cluster.startup_nodes,
           "QUART_CACHE_LOCAL": "true", "QUART_SIGNALS_BUS_CHANNEL": f"{prefix}signals"}
    with ServerProcess("--app", "tests.cache.view_app:create_view_app()", "--workers", "2",
                       env=env, log_dir=tmp_path) as server:  # it names the worker
        api = server.base_url + "/api/info"
        served_by: set[str] = set()
        for info_id in range(1, 31):  # a new connection each request: either worker
            listed = httpx.get(api)  # cached in that worker's tier (and the cluster)
            assert listed.status_code == 200
            created = httpx.post(api, json={"id": info_id, "name": "w", "money": "1"})
            assert created.status_code == 201
            row = httpx.get(f"{api}/{info_id}")
            page = httpx.get(api)
            assert row.status_code == 200
            assert page.json()["items"][0]["id"] == info_id  # newest first
            # (fast hits are answered before Quart, without the header)
            served_by.update(response.headers.get("x-worker-pid", "")
                             for response in (listed, created, row, page))
        served_by.discard("")
        if len(served_by) < 2:
            pytest.fail("every request went to one worker: the test proved nothing")
        ready = httpx.get(server.base_url + "/readyz")
        assert ready.status_code == 200
        bus = ready.json()["checks"]["signal_bus"]
        assert bus["ok"] and bus["local_tier"]["evictions_unconfirmed"] == 0
        assert server.stop() == 0


# --- start-up: a node down, a Redis that is no cluster node -----------------------------------


def test_a_redis_without_cluster_mode_stops_run_py_with_one_line(
    throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> None:
    """A plain Redis named as a cluster node is a settings mistake, not an outage: before, the
    app started and answered every cache call as unreachable, with readyz down for good."""
    env = {**clean_env(), "QUART_CACHE_TYPE": "RedisClusterCache",
           "QUART_CACHE_REDIS_CLUSTER": f"127.0.0.1:{throwaway_redis.port}",
           "QUART_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
           "QUART_SECRET_KEY": "test"}  # else a line says one is made up
    result = subprocess.run([sys.executable, "run.py", "--bind", f"127.0.0.1:{free_port()}"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"quart_app: bad setting CACHE_REDIS_CLUSTER = '127.0.0.1:{throwaway_redis.port}': "
        f"expected nodes of a Redis Cluster: 127.0.0.1:{throwaway_redis.port} is a Redis "
        "without cluster mode (cluster_enabled:0); for one server use CACHE_TYPE = "
        "'RedisCache' and CACHE_REDIS_URL")


async def test_a_cluster_named_by_a_node_that_is_down_starts_and_caches(
    shared_cluster: ThrowawayCluster, tmp_path: Path, prefix: str
) -> None:
    down = f"127.0.0.1:{free_port()}"  # nothing listens there
    app = create_app({**shared_cluster.app_config(prefix),
                      "CACHE_REDIS_CLUSTER": f"{down},{shared_cluster.startup_nodes}",
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    async with app.test_app():
        client = app.test_client()
        assert (await client.get("/api/info")).status_code == 200
        again = await client.get("/api/info")
        assert again.headers["Cache-Status"].startswith("quart_app; hit")
        assert (await client.get("/readyz")).status_code == 200
