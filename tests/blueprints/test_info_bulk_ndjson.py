"""POST /api/info/bulk with NDJSON: loads larger than one body, streamed, stored in chunks."""

from __future__ import annotations

import json
from typing import Any

from quart import Quart
from quart.testing import QuartClient

from quart_app import create_app
from quart_app.dispatch import receiver
from quart_app.signals import info_bulk_inserted, info_inserted

NDJSON = {"Content-Type": "application/x-ndjson"}


async def post_ndjson(client: QuartClient, body: bytes, **headers: str) -> Any:
    return await client.post("/api/info/bulk", data=body, headers={**NDJSON, **headers})


def lines(rows: list[Any]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


async def all_rows(client: QuartClient) -> list[dict[str, Any]]:
    """Every row, newest first, page by page (each page a cached read)."""
    rows: list[dict[str, Any]] = []
    url = "/api/info?limit=100"
    while True:
        page = await (await client.get(url)).get_json()
        rows.extend(page["items"])
        if page["next_cursor"] is None:
            return rows
        url = f"/api/info?limit=100&cursor={page['next_cursor']}"


async def test_a_load_larger_than_one_body_is_stored_whole_and_read_fresh(
    app: Quart, client: QuartClient
) -> None:
    count = 5000
    inserted: list[tuple[int, bool]] = []
    batches: list[int] = []

    @receiver(info_inserted, app)
    async def each(sender: Quart, row: Any, bulk: bool = False, **extra: Any) -> None:
        inserted.append((row.id, bulk))

    @receiver(info_bulk_inserted, app)
    async def batch(sender: Quart, rows: list[Any], **extra: Any) -> None:
        batches.append(len(rows))

    assert await all_rows(client) == []  # the empty list is cached
    assert (await client.get(f"/api/info/{count}")).status_code == 404  # so is this 404
    body = lines([{"id": n, "name": f"row {n}", "money": f"{n}.25"} for n in range(1, count + 1)])
    assert len(body) > app.config["MAX_CONTENT_LENGTH"]  # more than one body may carry
    response = await post_ndjson(client, body)
    assert response.status_code == 200, await response.get_data(as_text=True)
    results = (await response.get_json())["results"]
    assert results == [{"status": 201, "id": n} for n in range(1, count + 1)]
    # Read back complete, newest first, through the caches primed before the load.
    stored = await all_rows(client)
    assert [row["id"] for row in stored] == list(range(count, 0, -1))
    assert stored[0] == {"id": count, "name": f"row {count}", "money": f"{count}.25"}
    assert (await client.get(f"/api/info/{count}")).status_code == 200
    assert inserted == [(n, True) for n in range(1, count + 1)]  # every row announced
    assert batches == [1000] * 5  # one multi-row insert, one invalidation, per 1,000 rows
    stats = await (await client.get("/api/stats")).get_json()
    assert stats["info_inserts"] == count


async def test_each_line_gets_its_outcome_and_bad_lines_never_stop_the_others(
    app_config: dict[str, Any],
) -> None:
    app = create_app({**app_config, "MAX_CONTENT_LENGTH": 200})
    async with app.test_app():
        client = app.test_client()
        assert (await client.post("/api/info", json={"id": 3, "name": "x", "money": 1})
                ).status_code == 201
        body = b"".join([
            b'\xef\xbb\xbf{"id": 1, "name": "one", "money": "1"}\n',  # a BOM first: skipped
            b"\n",  # blank lines are skipped, not rows
            b'{"id": 2, "name": "caf\xe9", "money": 2}\n',  # Latin-1, not UTF-8
            b"   \r\n",
            b'{"id": 3, "name": "taken", "money": 3}\r\n',  # CRLF line ends work too
            b'{"id": 4, "name": \n',  # not JSON
            b"[1, 2]\n",  # JSON, not an object
            b'{"id": 5, "name": "' + b"x" * 300 + b'", "money": 5}\n',  # over MAX_CONTENT_LENGTH
            b'{"id": 6, "name": "six", "money": "1.234"}\n',  # not a valid row
            b'{"name": "auto", "money": 7}',  # the last line needs no newline
        ])
        response = await post_ndjson(client, body)
        assert response.status_code == 200
        results = (await response.get_json())["results"]
        assert [result["status"] for result in results] == [201, 400, 409, 400, 400, 400, 400,
                                                             201]
        assert results[0]["id"] == 1
        assert results[1]["fields"] == [
            {"field": "body", "reason": "not valid UTF-8: byte 0xe9 at offset 22 of the line"}]
        assert results[2]["id"] == 3 and results[2]["error"] == "duplicate_id"
        assert results[3]["fields"][0]["reason"].startswith("not valid JSON")
        assert results[4]["fields"][0]["reason"] == "expected a JSON object {...}, got an array"
        assert "longer than 200 bytes" in results[5]["fields"][0]["reason"]
        assert [problem["field"] for problem in results[6]["fields"]] == ["money"]
        auto_id = results[7]["id"]
        ids = [row["id"] for row in (await (await client.get("/api/info")).get_json())["items"]]
        assert ids == [auto_id, 1, 3]  # what was answered 201 is stored, nothing else


async def test_accept_ndjson_answers_one_result_per_line(client: QuartClient) -> None:
    body = lines([{"id": 1, "name": "a", "money": 1}, {"id": 1, "name": "b", "money": 1},
                  {"name": ""}])
    response = await post_ndjson(client, body, Accept="application/x-ndjson")
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    assert "Accept" in response.headers["Vary"]
    text = await response.get_data(as_text=True)
    assert text.endswith("\n")
    answered = [json.loads(line) for line in text.splitlines()]
    assert [line["status"] for line in answered] == [201, 409, 400]
    assert answered[0] == {"status": 201, "id": 1}
    # The same for a JSON array, and JSON when the client prefers it or says nothing.
    response = await client.post("/api/info/bulk", json=[{"id": 2, "name": "c", "money": 2}],
                                 headers={"Accept": "application/x-ndjson"})
    assert await response.get_data(as_text=True) == '{"status":201,"id":2}\n'
    response = await post_ndjson(client, lines([{"id": 3, "name": "d", "money": 3}]),
                                 Accept="application/json, application/x-ndjson;q=0.5")
    assert await response.get_json() == {"results": [{"status": 201, "id": 3}]}


async def test_more_rows_than_bulk_max_ndjson_rows_is_413_after_storing_the_first(
    app_config: dict[str, Any],
) -> None:
    app = create_app({**app_config, "BULK_MAX_NDJSON_ROWS": 3})
    async with app.test_app():
        client = app.test_client()
        rows = [{"id": n, "name": f"r{n}", "money": n} for n in range(1, 6)]
        response = await post_ndjson(client, b"\n" + lines(rows[:2]) + b"not json\n"
                                     + lines(rows[2:]))
        assert response.status_code == 413
        answer = await response.get_json()
        assert answer["error"] == "request_entity_too_large"
        assert "at most 3 rows" in answer["message"]
        assert [result["status"] for result in answer["results"]] == [201, 201, 400]
        page = await (await client.get("/api/info")).get_json()
        assert [row["id"] for row in page["items"]] == [2, 1]
        assert (await post_ndjson(client, lines(rows[2:5]))).status_code == 200


async def test_an_empty_ndjson_body_stores_nothing(client: QuartClient) -> None:
    response = await post_ndjson(client, b"\n\n")
    assert await response.get_json() == {"results": []}


async def test_other_media_types_and_charsets_are_415(client: QuartClient) -> None:
    response = await client.post("/api/info/bulk", data=b'{"name": "a", "money": 1}\n',
                                 headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    reason = (await response.get_json())["fields"][0]["reason"]
    assert reason == ("text/plain is not accepted: send the body as application/json or "
                      "application/x-ndjson")
    response = await client.post("/api/info/bulk", data=b'{"name": "a", "money": 1}\n',
                                 headers={"Content-Type": "application/x-ndjson; charset=latin-1"})
    assert response.status_code == 415
