"""POST /api/info/bulk: many rows per request, each with its own outcome, caches kept true."""

from __future__ import annotations

from typing import Any

from quart import Quart
from quart.testing import QuartClient

from quart_app import create_app
from quart_app.dispatch import receiver
from quart_app.extensions import cache
from quart_app.signals import info_bulk_inserted, info_insert_failed, info_inserted


async def bulk(client: QuartClient, rows: Any) -> Any:
    return await client.post("/api/info/bulk", json=rows)


async def listed_ids(client: QuartClient) -> list[int]:
    page = await (await client.get("/api/info?limit=100")).get_json()
    return [row["id"] for row in page["items"]]


async def test_every_row_gets_its_outcome_in_order(client: QuartClient) -> None:
    assert (await client.post("/api/info", json={"id": 3, "name": "x", "money": 1})
            ).status_code == 201
    response = await bulk(client, [
        {"id": 1, "name": "one", "money": "1"},
        {"id": 3, "name": "taken", "money": 2},
        {"name": "auto", "money": "3.5"},
        {"id": 4, "name": "bad", "money": "1.234"},
        {"id": 1, "name": "twice", "money": 1},
        "not an object",
        {"id": 2, "name": "two", "money": 2, "colour": "red"},
        {"id": 2, "name": "two", "money": 2},
    ])
    assert response.status_code == 200
    results = (await response.get_json())["results"]
    assert [result["status"] for result in results] == [201, 409, 201, 400, 409, 400, 400, 201]
    assert results[0]["id"] == 1
    assert results[1]["id"] == 3 and results[1]["error"] == "duplicate_id"
    auto_id = results[2]["id"]
    assert auto_id not in (1, 2, 3)
    assert [problem["field"] for problem in results[3]["fields"]] == ["money"]
    assert results[4]["id"] == 1
    assert [problem["field"] for problem in results[5]["fields"]] == ["body"]
    assert [problem["field"] for problem in results[6]["fields"]] == ["colour"]
    assert results[7]["id"] == 2
    # What was answered 201 is stored, in the order given; nothing else is.
    assert await listed_ids(client) == [2, auto_id, 1, 3]
    assert await (await client.get(f"/api/info/{auto_id}")).get_json() == {
        "id": auto_id, "name": "auto", "money": "3.50"}
    assert (await (await client.get("/api/info/1")).get_json())["name"] == "one"


async def test_an_empty_array_stores_nothing(client: QuartClient) -> None:
    response = await bulk(client, [])
    assert await response.get_json() == {"results": []}


async def test_a_body_that_is_not_an_array_is_400_or_415(client: QuartClient) -> None:
    response = await bulk(client, {"id": 1, "name": "a", "money": 1})
    assert response.status_code == 400
    assert (await response.get_json())["fields"][0]["field"] == "body"
    response = await client.post("/api/info/bulk", data=b"[{",
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    response = await client.post("/api/info/bulk", form={"id": "1", "name": "a", "money": "1"})
    assert response.status_code == 415
    assert await listed_ids(client) == []


async def test_more_rows_than_bulk_max_rows_is_413(app_config: dict[str, Any]) -> None:
    app = create_app({**app_config, "BULK_MAX_ROWS": 3})
    async with app.test_app():
        client = app.test_client()
        rows = [{"name": f"r{n}", "money": 1} for n in range(4)]
        response = await bulk(client, rows)
        assert response.status_code == 413
        assert "at most 3 rows" in (await response.get_json())["message"]
        assert (await bulk(client, rows[:3])).status_code == 200
        assert len(await listed_ids(client)) == 3


async def test_cached_reads_show_a_bulk_load_at_once(client: QuartClient) -> None:
    assert await listed_ids(client) == []  # the empty page is cached
    assert (await client.get("/api/info/7")).status_code == 404  # so is the 404
    assert (await client.get("/api/info/7")).headers["Cache-Status"].startswith("quart_app; hit")
    await bulk(client, [{"id": 7, "name": "a", "money": 1}, {"id": 8, "name": "b", "money": 2}])
    assert await listed_ids(client) == [8, 7]
    assert (await client.get("/api/info/7")).status_code == 200


async def test_each_row_is_announced_and_the_caches_invalidated_once_per_batch(
    app: Quart, client: QuartClient
) -> None:
    inserted: list[tuple[int, bool]] = []
    failed: list[int | None] = []
    batches: list[int] = []

    @receiver(info_bulk_inserted, app)
    async def batch(sender: Quart, rows: list[Any], **extra: Any) -> None:
        batches.append(len(rows))

    @receiver(info_inserted, app)
    async def each(sender: Quart, row: Any, bulk: bool = False, **extra: Any) -> None:
        inserted.append((row.id, bulk))

    @receiver(info_insert_failed, app)
    async def refused(sender: Quart, id: int | None, **extra: Any) -> None:
        failed.append(id)

    client_cache = cache.client_for(app)
    real_delete = client_cache.delete
    deleted: list[str] = []

    async def recording_delete(key: str) -> bool:
        deleted.append(key)
        return await real_delete(key)

    client_cache.delete = recording_delete
    rows = [{"id": n, "name": f"r{n}", "money": n} for n in range(1, 51)]
    rows.append({"id": 1, "name": "duplicate", "money": 1})
    response = await bulk(client, rows)
    assert [r["status"] for r in (await response.get_json())["results"]] == [201] * 50 + [409]
    assert inserted == [(n, True) for n in range(1, 51)]
    assert failed == [1]
    assert batches == [50]
    assert len(deleted) == 2  # the list and the row view, not one per row
    stats = await (await client.get("/api/stats")).get_json()
    assert stats["info_inserts"] == 50


async def test_a_full_batch_of_the_default_size_is_stored(client: QuartClient) -> None:
    count = 1000  # BULK_MAX_ROWS's default, within the default MAX_CONTENT_LENGTH
    rows = [{"name": f"row {n}", "money": f"{n}.25"} for n in range(count)]
    response = await bulk(client, rows)
    results = (await response.get_json())["results"]
    assert [result["status"] for result in results] == [201] * count
    assert len({result["id"] for result in results}) == count
    last = await (await client.get(f"/api/info/{results[-1]['id']}")).get_json()
    assert last["name"] == f"row {count - 1}" and last["money"] == f"{count - 1}.25"
