"""The info API end to end: SQLite and MariaDB, memory and Redis caches, all through HTTP."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from quart import Quart
from quart.testing import QuartClient

from quart_app import create_app
from quart_app.dispatch import receiver
from quart_app.signals import info_insert_failed, info_inserted, info_will_insert

from ..support import free_port
from ..throwaway_redis import ThrowawayRedis


async def post(client: QuartClient, **fields: Any) -> Any:
    return await client.post("/api/info", json=fields)


async def test_post_stores_and_returns_the_row(client: QuartClient) -> None:
    response = await post(client, id=5, name="redis", money=588)
    assert response.status_code == 201
    assert await response.get_json() == {"id": 5, "name": "redis", "money": "588.00"}
    assert response.headers["Location"] == "/api/info/5"
    fetched = await client.get(response.headers["Location"])
    assert await fetched.get_json() == {"id": 5, "name": "redis", "money": "588.00"}


async def test_form_body_is_accepted(client: QuartClient) -> None:
    response = await client.post("/api/info", form={"id": "7", "name": "form", "money": "1.5"})
    assert response.status_code == 201
    assert await response.get_json() == {"id": 7, "name": "form", "money": "1.50"}


async def test_id_is_assigned_when_omitted(client: QuartClient) -> None:
    first = await (await post(client, name="a", money="1")).get_json()
    second = await (await post(client, name="b", money="2")).get_json()
    assert first["id"] >= 1
    assert second["id"] not in (None, first["id"])


async def test_money_is_exact_to_the_cent(client: QuartClient) -> None:
    cases = {1: ("0.1", "0.10"), 2: ("9999999999.99", "9999999999.99"), 3: (0.2, "0.20"),
             4: ("0", "0.00"), 5: ("12.05", "12.05")}
    for info_id, (given, stored) in cases.items():
        response = await post(client, id=info_id, name="m", money=given)
        assert (await response.get_json())["money"] == stored
        row = await (await client.get(f"/api/info/{info_id}")).get_json()
        assert row["money"] == stored


async def test_list_is_newest_first_with_cursor_paging(client: QuartClient) -> None:
    for info_id in (30, 10, 20, 40, 5):  # insertion order, not id order
        assert (await post(client, id=info_id, name=f"n{info_id}", money=1)).status_code == 201
    first = await (await client.get("/api/info?limit=2")).get_json()
    assert [row["id"] for row in first["items"]] == [5, 40]
    second = await (await client.get(f"/api/info?limit=2&cursor={first['next_cursor']}")).get_json()
    assert [row["id"] for row in second["items"]] == [20, 10]
    third = await (await client.get(f"/api/info?limit=2&cursor={second['next_cursor']}")).get_json()
    assert [row["id"] for row in third["items"]] == [30]
    assert third["next_cursor"] is None


async def test_bad_cursor_and_limit_are_400(client: QuartClient) -> None:
    response = await client.get("/api/info?cursor=not-a-cursor")
    assert response.status_code == 400
    assert (await response.get_json())["fields"][0]["field"] == "cursor"
    response = await client.get("/api/info?limit=0")
    assert response.status_code == 400
    assert (await response.get_json())["fields"][0]["field"] == "limit"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": 0, "name": "a", "money": 1}, "id"),
        ({"id": -3, "name": "a", "money": 1}, "id"),
        ({"id": 2**31, "name": "a", "money": 1}, "id"),
        ({"id": "five", "name": "a", "money": 1}, "id"),
        ({"id": 1, "name": "", "money": 1}, "name"),
        ({"id": 1, "name": "   ", "money": 1}, "name"),
        ({"id": 1, "name": "x" * 65, "money": 1}, "name"),
        ({"id": 1, "name": "a", "money": "1.234"}, "money"),
        ({"id": 1, "name": "a", "money": "-1"}, "money"),
        ({"id": 1, "name": "a", "money": "1e20"}, "money"),
        ({"id": 1, "name": "a", "money": "NaN"}, "money"),
        ({"id": 1, "name": "a", "money": "cheap"}, "money"),
        ({"id": 1, "name": "a", "money": 1, "colour": "red"}, "colour"),
        ({"id": 1, "money": 1}, "name"),
    ],
)
async def test_bad_input_names_the_field_and_why(
    client: QuartClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/info", json=body)
    assert response.status_code == 400
    payload = await response.get_json()
    assert payload["error"] == "invalid_request"
    assert [problem["field"] for problem in payload["fields"]] == [field]
    assert payload["fields"][0]["reason"]
    assert (await (await client.get("/api/info")).get_json())["items"] == []


async def test_every_bad_field_is_reported(client: QuartClient) -> None:
    response = await client.post("/api/info", json={"id": 0, "name": "", "money": "x"})
    fields = [problem["field"] for problem in (await response.get_json())["fields"]]
    assert fields == ["id", "name", "money"]


async def test_malformed_and_non_object_bodies_are_400(client: QuartClient) -> None:
    response = await client.post(
        "/api/info", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    response = await client.post("/api/info", json=[1, 2])
    assert response.status_code == 400
    response = await client.post("/api/info", data=b"x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415


async def test_duplicate_id_is_409_and_changes_nothing(client: QuartClient) -> None:
    assert (await post(client, id=9, name="first", money=1)).status_code == 201
    response = await post(client, id=9, name="second", money=2)
    assert response.status_code == 409
    assert (await response.get_json())["error"] == "duplicate_id"
    row = await (await client.get("/api/info/9")).get_json()
    assert row == {"id": 9, "name": "first", "money": "1.00"}


async def test_body_too_large_is_413(app_config: dict[str, Any]) -> None:
    app = create_app({**app_config, "MAX_CONTENT_LENGTH": 1024})
    async with app.test_app():
        response = await app.test_client().post(
            "/api/info", json={"id": 1, "name": "a", "money": 1, "pad": "x" * 2000}
        )
        assert response.status_code == 413
        assert (await response.get_json())["error"] == "request_entity_too_large"


async def test_missing_row_is_404(client: QuartClient) -> None:
    response = await client.get("/api/info/12345")
    assert response.status_code == 404
    assert "12345" in (await response.get_json())["message"]


async def test_the_tutorials_url_inserts_like_the_tutorial(client: QuartClient) -> None:
    response = await client.get("/info?id=5&name=redis&money=588")
    assert response.status_code == 200
    assert await response.get_data(as_text=True) == "创建info数据成功!!!"
    row = await (await client.get("/api/info/5")).get_json()
    assert row == {"id": 5, "name": "redis", "money": "588.00"}
    assert (await client.get("/info?id=5&name=redis&money=588")).status_code == 409
    assert (await client.get("/info?id=6&name=redis&money=5.555")).status_code == 400


async def test_reads_see_an_insert_as_soon_as_it_is_acknowledged(client: QuartClient) -> None:
    assert (await (await client.get("/api/info")).get_json())["items"] == []  # now cached
    assert (await client.get("/api/info/3")).status_code == 404
    await post(client, id=3, name="fresh", money=1)
    assert [row["id"] for row in (await (await client.get("/api/info")).get_json())["items"]] == [3]
    assert (await client.get("/api/info/3")).status_code == 200


async def test_concurrent_inserts_and_reads_never_read_stale(client: QuartClient) -> None:
    async def insert_then_read(info_id: int) -> bool:
        response = await post(client, id=info_id, name=f"c{info_id}", money=info_id)
        assert response.status_code == 201
        page = await (await client.get("/api/info?limit=100")).get_json()
        return info_id in {row["id"] for row in page["items"]}

    results = await asyncio.gather(*(insert_then_read(i) for i in range(1, 51)))
    assert all(results)
    page = await (await client.get("/api/info?limit=100")).get_json()
    assert sorted(row["id"] for row in page["items"]) == list(range(1, 51))


async def test_signals_follow_the_commit_for_this_app_only(
    app: Quart, client: QuartClient, app_config: dict[str, Any]
) -> None:
    events: list[tuple[str, Any]] = []
    other = create_app(app_config)

    @receiver(info_will_insert, app)
    async def before(sender: Quart, id: int | None, **extra: Any) -> None:
        events.append(("will", id))

    @receiver(info_inserted, app)
    async def after(sender: Quart, row: Any, **extra: Any) -> None:
        # Sent after the commit: the row is already readable through the store.
        stored = await sender.extensions["database"].store.get(row.id)
        events.append(("inserted", stored))

    @receiver(info_insert_failed, app)
    async def failed(sender: Quart, id: int | None, error: Exception, **extra: Any) -> None:
        events.append(("failed", type(error).__name__))

    @receiver(info_inserted, other)
    async def wrong_app(sender: Quart, **extra: Any) -> None:
        events.append(("wrong app", None))

    await post(client, id=11, name="s", money=1)
    await post(client, id=11, name="s", money=1)
    assert [event[0] for event in events] == ["will", "inserted", "will", "failed"]
    assert events[1][1].id == 11
    assert events[3][1] == "DuplicateId"


async def test_a_raising_receiver_fails_neither_the_insert_nor_the_others(
    app: Quart, client: QuartClient, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    @receiver(info_inserted, app)
    async def broken(sender: Quart, **extra: Any) -> None:
        raise RuntimeError("receiver bug")

    @receiver(info_inserted, app)
    async def later(sender: Quart, **extra: Any) -> None:
        ran.append("later")

    response = await post(client, id=12, name="r", money=1)
    assert response.status_code == 201
    assert ran == ["later"]
    assert any("broken" in record.getMessage() for record in caplog.records
               if record.name == "quart_app.dispatch")


async def test_audit_log_and_insert_counter(
    client: QuartClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quart_app.audit")
    await post(client, id=21, name="audited", money="2.5")
    await post(client, id=22, name="again", money="1")
    audit = [r.getMessage() for r in caplog.records if r.name == "quart_app.audit"]
    assert audit[0] == "info inserted: id=21 name='audited' money=2.50"
    assert (await (await client.get("/api/stats")).get_json())["info_inserts"] == 2


async def test_openapi_document_describes_the_api(client: QuartClient) -> None:
    spec = await (await client.get("/api/openapi.json")).get_json()
    assert "/api/info" in spec["paths"]
    assert "post" in spec["paths"]["/api/info"]


async def test_database_down_is_503_with_retry_after(
    cache_config: dict[str, Any]
) -> None:
    app = create_app({**cache_config,
                      "DATABASE_URL": f"mysql://root@127.0.0.1:{free_port()}/school",
                      "DATABASE_POOL": {"connect_timeout": 1}})
    async with app.test_app():
        client = app.test_client()
        response = await post(client, id=1, name="a", money=1)
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) >= 1
        assert (await response.get_json())["error"] == "database_unavailable"
        assert (await client.get("/api/info")).status_code == 503
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert (await ready.get_json())["down"] == ["database"]


# --- the reads are cached views (quart_app.cache.views) ----------------------------------


async def test_reads_are_served_from_the_cache_until_an_insert(
    app: Quart, client: QuartClient
) -> None:
    store = app.extensions["database"].store
    queries = 0
    real_list_page = store.list_page

    async def counting_list_page(*args: Any) -> Any:
        nonlocal queries
        queries += 1
        return await real_list_page(*args)

    store.list_page = counting_list_page
    first = await client.get("/api/info")
    again = await client.get("/api/info")
    assert again.headers["Cache-Status"].startswith("quart_app; hit")
    assert await again.get_json() == await first.get_json()
    assert queries == 1
    pages = await asyncio.gather(*(client.get("/api/info?limit=5") for _ in range(50)))
    assert {page.status_code for page in pages} == {200}
    assert queries == 2  # fifty concurrent misses, one query
    await post(client, id=1, name="n", money=1)
    assert [row["id"] for row in (await (await client.get("/api/info")).get_json())["items"]] == [1]
    assert queries == 3


async def test_a_cached_404_ends_with_the_insert_that_assigns_its_id(client: QuartClient) -> None:
    assert (await client.get("/api/info/1")).status_code == 404
    assert (await client.get("/api/info/1")).headers["Cache-Status"].startswith("quart_app; hit")
    created = await (await post(client, name="assigned", money=1)).get_json()
    assert created["id"] == 1
    assert await (await client.get("/api/info/1")).get_json() == created


async def test_an_invalidation_dropped_in_a_redis_outage_never_serves_a_stale_read(
    throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> None:
    app = create_app({
        "CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": throwaway_redis.url,
        "CACHE_REDIS_TIMEOUT": 0.3, "CACHE_RETRY_INTERVAL": 0.1,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    })
    admin = redis.Redis.from_url(throwaway_redis.url)
    async with app.test_app():
        client = app.test_client()
        assert (await (await client.get("/api/info")).get_json())["items"] == []
        assert (await client.get("/api/info")).headers["Cache-Status"].startswith(
            "quart_app; hit")  # the empty page is cached
        assert (await client.get("/api/info/1")).status_code == 404  # so is the 404
        # Redis stops answering (and keeps its data): the insert's invalidation times out.
        await admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        # Stored, but not acknowledged as fresh: the deletion did not reach Redis.
        during = await post(client, id=1, name="during", money=1)
        assert during.status_code == 503 and (await during.get_json())["stored"] is True
        statuses = []
        for _ in range(200):  # through the outage, and on until Redis serves hits again
            page = await client.get("/api/info")
            assert [row["id"] for row in (await page.get_json())["items"]] == [1]
            assert (await client.get("/api/info/1")).status_code == 200
            statuses.append(page.headers["Cache-Status"])
            if statuses[-1].startswith("quart_app; hit"):
                break
            await asyncio.sleep(0.05)
        assert "quart_app; fwd=miss; detail=cache-unavailable" in statuses
        assert statuses[-1].startswith("quart_app; hit")
    await admin.aclose()
