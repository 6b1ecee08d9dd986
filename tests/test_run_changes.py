"""Updates, deletes and bulk loads through a real `python run.py` with 2 workers on MariaDB and
Redis: every change acknowledged by one worker is read at once by any worker; an NDJSON load
larger than one body streamed through the server."""

from __future__ import annotations

import concurrent.futures
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .server_process import ServerProcess
from .services import MYSQL_URL, REDIS_URL, forget_redis_prefix, require_service
from .support import reset_mysql_table


def test_two_workers_read_each_change_at_once(tmp_path: Path) -> None:
    mysql = require_service("MariaDB", MYSQL_URL)
    redis = require_service("Redis", REDIS_URL)
    reset_mysql_table(mysql)
    prefix = f"run-changes-{uuid.uuid4().hex[:8]}:"
    env = {"QUART_DATABASE_URL": mysql, "QUART_CACHE_TYPE": "RedisCache",
           "QUART_CACHE_REDIS_URL": redis, "QUART_CACHE_KEY_PREFIX": prefix}
    try:
        with ServerProcess("--workers", "2", env=env, log_dir=tmp_path) as server:
            base = server.base_url
            created = httpx.post(base + "/api/info/bulk", json=[
                {"id": n, "name": f"r{n}", "money": n} for n in range(1, 25)])
            assert [r["status"] for r in created.json()["results"]] == [201] * 24

            def change_then_read(info_id: int) -> tuple[str, str, str]:
                # New connections: the kernel spreads them over both workers.
                with httpx.Client(base_url=base) as reader:
                    reader.get(f"/api/info/{info_id}")  # cached by some worker
                    reader.get("/api/info?limit=100")
                with httpx.Client(base_url=base) as writer:
                    etag = writer.get(f"/api/info/{info_id}").headers["etag"]
                    if info_id % 2:
                        changed = writer.put(f"/api/info/{info_id}", headers={"If-Match": etag},
                                             json={"name": f"new{info_id}", "money": 0})
                        assert changed.status_code == 200, changed.text
                    else:
                        gone = writer.delete(f"/api/info/{info_id}", headers={"If-Match": etag})
                        assert gone.status_code == 204, gone.text
                with httpx.Client(base_url=base) as reader:
                    row = reader.get(f"/api/info/{info_id}", headers={"If-None-Match": etag})
                    page = reader.get("/api/info?limit=100").json()
                    names = {item["id"]: item["name"] for item in page["items"]}
                    return (str(row.status_code), row.json().get("name", "-"),
                            names.get(info_id, "-"))

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                seen = dict(zip(range(1, 25), pool.map(change_then_read, range(1, 25)),
                                strict=True))
            for info_id, (status, name, listed) in seen.items():
                if info_id % 2:
                    assert (status, name, listed) == ("200", f"new{info_id}", f"new{info_id}")
                else:
                    assert (status, listed) == ("404", "-")
            stats = httpx.get(base + "/api/stats").json()
            assert (stats["info_inserts"], stats["info_updates"], stats["info_deletes"]) == (
                24, 12, 12)
            assert server.stop() == 0
    finally:
        forget_redis_prefix(redis, prefix)


def ndjson_rows(count: int) -> Iterator[bytes]:
    for start in range(0, count, 500):
        yield b"".join(b'{"name": "r%d", "money": "%d.50"}\n' % (n, n)
                       for n in range(start, min(start + 500, count)))


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_an_ndjson_load_larger_than_one_body_streams_through_the_server(
    tmp_path: Path, framing: str
) -> None:
    count = 20_000  # about 0.7 MB: eleven times MAX_CONTENT_LENGTH
    env = {"QUART_DATABASE_URL": f"sqlite:///{tmp_path / 'nd.sqlite3'}",
           "QUART_LOG_LEVEL": "WARNING"}
    body: Iterator[bytes] | bytes = ndjson_rows(count)
    if framing == "content-length":
        body = b"".join(body)
    with ServerProcess("--workers", "2", env=env, log_dir=tmp_path) as server:
        answer = httpx.post(server.base_url + "/api/info/bulk", content=body, timeout=60,
                            headers={"Content-Type": "application/x-ndjson",
                                     "Accept": "application/x-ndjson"})
        assert answer.status_code == 200, answer.text[:500]
        results = [json.loads(line) for line in answer.text.splitlines()]
        assert [result["status"] for result in results] == [201] * count
        ids = [result["id"] for result in results]
        assert len(set(ids)) == count
        last = httpx.get(f"{server.base_url}/api/info/{ids[-1]}").json()
        assert last == {"id": ids[-1], "name": f"r{count - 1}", "money": f"{count - 1}.50"}
        assert server.stop() == 0
    assert "Traceback" not in server.output()


def test_an_ndjson_load_over_its_row_limit_is_answered_413_through_the_server(
    tmp_path: Path,
) -> None:
    # The server stops reading at the limit while the client still sends: it must answer,
    # not leave the connection waiting (request_body drains the rest after the answer).
    env = {"QUART_DATABASE_URL": f"sqlite:///{tmp_path / 'nd.sqlite3'}",
           "QUART_LOG_LEVEL": "WARNING", "QUART_BULK_MAX_NDJSON_ROWS": "1000"}
    with ServerProcess(env=env, log_dir=tmp_path) as server:
        for body in (ndjson_rows(20_000), b"".join(ndjson_rows(20_000))):
            answer = httpx.post(server.base_url + "/api/info/bulk", content=body, timeout=20,
                                headers={"Content-Type": "application/x-ndjson"})
            assert answer.status_code == 413, answer.text[:500]
            assert [result["status"] for result in answer.json()["results"]] == [201] * 1000
        page = httpx.get(server.base_url + "/api/info?limit=1").json()
        assert page["items"][0]["name"] == "r999"  # the second load's last stored row
        assert server.stop() == 0
    assert "Traceback" not in server.output()
