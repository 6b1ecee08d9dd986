"""The info API through a real `python run.py`: SQLite + memory, MariaDB + Redis with 2 workers,
and the database going away and coming back under a running server."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .server_process import ServerProcess
from .services import MYSQL_URL, REDIS_URL, forget_redis_prefix, require_service
from .support import reset_mysql_table
from .throwaway_mariadb import (  # noqa: F401  (fixtures)
    ThrowawayMariaDB,
    mariadb_datadir_template,
    throwaway_mariadb,
)


@pytest.fixture(params=["sqlite-memory-1", "mariadb-redis-2"])
def server_env(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[dict[str, str], str]]:
    if request.param == "sqlite-memory-1":
        yield {"QUART_DATABASE_URL": f"sqlite:///{tmp_path / 'p.sqlite3'}"}, "1"
        return
    mysql = require_service("MariaDB", MYSQL_URL)
    redis = require_service("Redis", REDIS_URL)
    reset_mysql_table(mysql)
    prefix = f"run-info-{tmp_path.name}:"
    yield {"QUART_DATABASE_URL": mysql, "QUART_CACHE_TYPE": "RedisCache",
           "QUART_CACHE_REDIS_URL": redis, "QUART_CACHE_KEY_PREFIX": prefix}, "2"
    forget_redis_prefix(redis, prefix)


def test_inserts_and_reads_over_http(
    server_env: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, workers = server_env
    with ServerProcess("--workers", workers, env=env, log_dir=tmp_path) as server:
        base = server.base_url
        assert httpx.get(base + "/info?id=5&name=redis&money=588").text == "创建info数据成功!!!"
        assert httpx.get(base + "/api/info/5").json() == {"id": 5, "name": "redis",
                                                            "money": "588.00"}

        def insert_then_list(info_id: int) -> bool:
            with httpx.Client(base_url=base) as client:  # a new connection: any worker
                created = client.post("/api/info", json={"id": info_id, "name": "p",
                                                         "money": "1.10"})
                assert created.status_code == 201, created.text
                page = client.get("/api/info?limit=100").json()
                return info_id in {row["id"] for row in page["items"]}

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            seen = list(pool.map(insert_then_list, range(100, 140)))
        # With Redis every worker shares the cache: read-your-writes holds across workers.
        # With the memory cache and one worker it holds too.
        assert all(seen)
        page = httpx.get(base + "/api/info?limit=100").json()
        assert sorted(row["id"] for row in page["items"]) == [5, *range(100, 140)]
        assert httpx.post(base + "/api/info", json={"id": 5, "name": "x",
                                                    "money": 1}).status_code == 409
        ready = httpx.get(base + "/readyz").json()
        assert ready["status"] == "ready"
        assert ready["checks"]["database"]["pool"]["in_use"] == 0
        assert server.stop() == 0


def test_database_down_and_back_under_a_running_server(
    throwaway_mariadb: ThrowawayMariaDB, tmp_path: Path  # noqa: F811
) -> None:
    throwaway_mariadb.start()
    env = {"QUART_DATABASE_URL": throwaway_mariadb.url,
           "QUART_DATABASE_POOL__CONNECT_TIMEOUT": "1"}
    with ServerProcess(env=env, log_dir=tmp_path) as server:
        base = server.base_url
        assert httpx.post(base + "/api/info", json={"id": 1, "name": "a",
                                                    "money": 1}).status_code == 201
        throwaway_mariadb.kill()
        down = httpx.post(base + "/api/info", json={"id": 2, "name": "b", "money": 1},
                          timeout=15)
        assert down.status_code == 503
        assert int(down.headers["Retry-After"]) >= 1
        assert down.json()["error"] == "database_unavailable"
        ready = httpx.get(base + "/readyz", timeout=15)
        assert ready.status_code == 503 and ready.json()["down"] == ["database"]

        throwaway_mariadb.start()
        back = httpx.post(base + "/api/info", json={"id": 2, "name": "b", "money": 1},
                          timeout=15)
        assert back.status_code == 201, back.text
        rows = httpx.get(base + "/api/info").json()["items"]
        assert [row["id"] for row in rows] == [2, 1]  # nothing acknowledged was lost
        assert "Traceback" not in server.output().split("Running on")[0]
        assert server.stop() == 0
