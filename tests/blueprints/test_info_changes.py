"""Updating and deleting info rows through HTTP: SQLite and MariaDB, memory and Redis caches."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from quart import Quart
from quart.testing import QuartClient

from quart_app import create_app
from quart_app.dispatch import receiver
from quart_app.signals import (
    info_delete_failed,
    info_deleted,
    info_update_failed,
    info_updated,
    info_will_delete,
    info_will_update,
)

from ..support import free_port

ROW = {"id": 5, "name": "redis", "money": "588.00"}


async def insert(client: QuartClient, **fields: Any) -> None:
    response = await client.post("/api/info", json=fields)
    assert response.status_code == 201, await response.get_json()


async def read(client: QuartClient, info_id: int = 5) -> Any:
    return await (await client.get(f"/api/info/{info_id}")).get_json()


async def listed(client: QuartClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await (await client.get("/api/info")).get_json())["items"]
    return items


@pytest.fixture
async def row(client: QuartClient) -> dict[str, Any]:
    await insert(client, **ROW)
    return ROW


async def test_put_replaces_the_row(client: QuartClient, row: dict[str, Any]) -> None:
    response = await client.put("/api/info/5", json={"name": "mysql", "money": "1.5"})
    assert response.status_code == 200
    assert await response.get_json() == {"id": 5, "name": "mysql", "money": "1.50"}
    fetched = await client.get("/api/info/5")
    assert await fetched.get_json() == {"id": 5, "name": "mysql", "money": "1.50"}
    # The ETag the PUT answers with is the one a read sends.
    assert response.headers["ETag"] == fetched.headers["ETag"]


async def test_put_takes_a_form_body(client: QuartClient, row: dict[str, Any]) -> None:
    response = await client.put("/api/info/5", form={"name": "form", "money": "2"})
    assert await response.get_json() == {"id": 5, "name": "form", "money": "2.00"}


async def test_patch_changes_only_what_it_names(client: QuartClient, row: dict[str, Any]) -> None:
    response = await client.patch("/api/info/5", json={"name": "renamed"})
    assert await response.get_json() == {"id": 5, "name": "renamed", "money": "588.00"}
    response = await client.patch("/api/info/5", json={"money": 7})
    assert await response.get_json() == {"id": 5, "name": "renamed", "money": "7.00"}
    assert await read(client) == {"id": 5, "name": "renamed", "money": "7.00"}


@pytest.mark.parametrize(
    ("method", "body", "fields"),
    [
        ("put", {"name": "a"}, ["money"]),
        ("put", {"money": 1}, ["name"]),
        ("put", {"name": "", "money": "1.234"}, ["name", "money"]),
        ("put", {"id": 6, "name": "a", "money": 1}, ["id"]),
        ("patch", {}, ["body"]),
        ("patch", {"money": "-1"}, ["money"]),
        ("patch", {"name": "x" * 65}, ["name"]),
        ("patch", {"colour": "red"}, ["colour"]),
    ],
)
async def test_bad_input_names_each_field_and_changes_nothing(
    client: QuartClient, row: dict[str, Any], method: str, body: dict[str, Any],
    fields: list[str],
) -> None:
    response = await getattr(client, method)("/api/info/5", json=body)
    assert response.status_code == 400
    payload = await response.get_json()
    assert payload["error"] == "invalid_request"
    assert [problem["field"] for problem in payload["fields"]] == fields
    assert all(problem["reason"] for problem in payload["fields"])
    assert await read(client) == ROW


async def test_a_body_that_is_not_json_or_a_form_is_415(
    client: QuartClient, row: dict[str, Any]
) -> None:
    response = await client.put("/api/info/5", data=b"x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415


async def test_changing_a_missing_row_is_404_and_creates_nothing(client: QuartClient) -> None:
    for method, body in (("put", {"name": "a", "money": 1}), ("patch", {"name": "a"})):
        response = await getattr(client, method)("/api/info/5", json=body)
        assert response.status_code == 404
        assert (await response.get_json())["error"] == "not_found"
    response = await client.delete("/api/info/5")
    assert response.status_code == 404
    assert "5" in (await response.get_json())["message"]
    assert (await client.delete("/api/info/2147483648")).status_code == 404
    assert await listed(client) == []


async def test_delete_is_204_and_the_row_is_gone(client: QuartClient, row: dict[str, Any]) -> None:
    await insert(client, id=6, name="stays", money=1)
    response = await client.delete("/api/info/5")
    assert response.status_code == 204
    assert await response.get_data() == b""
    assert (await client.get("/api/info/5")).status_code == 404
    assert [item["id"] for item in await listed(client)] == [6]
    assert (await client.delete("/api/info/5")).status_code == 404


# --- If-Match ------------------------------------------------------------------------------


async def test_if_match_with_the_current_etag_changes_the_row(
    client: QuartClient, row: dict[str, Any]
) -> None:
    etag = (await client.get("/api/info/5")).headers["ETag"]
    response = await client.patch("/api/info/5", json={"money": 1}, headers={"If-Match": etag})
    assert response.status_code == 200
    new_etag = response.headers["ETag"]
    assert new_etag != etag
    response = await client.put("/api/info/5", json={"name": "b", "money": 2},
                                headers={"If-Match": f'"other", {new_etag}'})
    assert response.status_code == 200
    response = await client.delete("/api/info/5", headers={"If-Match": response.headers["ETag"]})
    assert response.status_code == 204


async def test_if_match_with_an_outdated_etag_is_412_and_changes_nothing(
    client: QuartClient, row: dict[str, Any]
) -> None:
    old = (await client.get("/api/info/5")).headers["ETag"]
    assert (await client.patch("/api/info/5", json={"name": "first"})).status_code == 200
    for method, body in (("put", {"name": "b", "money": 2}), ("patch", {"money": 3}),
                         ("delete", None)):
        kwargs = {"json": body} if body is not None else {}
        response = await getattr(client, method)("/api/info/5", headers={"If-Match": old},
                                                  **kwargs)
        assert response.status_code == 412
        assert (await response.get_json())["error"] == "precondition_failed"
    assert await read(client) == {"id": 5, "name": "first", "money": "588.00"}


async def test_if_match_compares_strongly_and_accepts_a_star(
    client: QuartClient, row: dict[str, Any]
) -> None:
    etag = (await client.get("/api/info/5")).headers["ETag"]
    weak = await client.patch("/api/info/5", json={"money": 1}, headers={"If-Match": f"W/{etag}"})
    assert weak.status_code == 412
    star = await client.patch("/api/info/5", json={"money": 1}, headers={"If-Match": "*"})
    assert star.status_code == 200
    assert (await client.delete("/api/info/9", headers={"If-Match": "*"})).status_code == 404
    assert (await client.delete("/api/info/9", headers={"If-Match": etag})).status_code == 404


async def test_concurrent_updates_with_one_if_match_leave_exactly_one_winner(
    client: QuartClient, row: dict[str, Any]
) -> None:
    etag = (await client.get("/api/info/5")).headers["ETag"]
    responses = await asyncio.gather(*(
        client.put("/api/info/5", json={"name": f"writer {n}", "money": n},
                   headers={"If-Match": etag})
        for n in range(1, 11)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [412] * 9
    winner = next(response for response in responses if response.status_code == 200)
    assert await read(client) == await winner.get_json()


# --- the caches stay true ------------------------------------------------------------------


async def test_reads_show_an_update_at_once(client: QuartClient, row: dict[str, Any]) -> None:
    first = await client.get("/api/info/5")
    assert (await client.get("/api/info/5")).headers["Cache-Status"].startswith("quart_app; hit")
    assert await listed(client) == [ROW]  # cached too
    assert (await client.put("/api/info/5", json={"name": "new", "money": 1})).status_code == 200
    updated = {"id": 5, "name": "new", "money": "1.00"}
    assert await read(client) == updated
    assert await listed(client) == [updated]
    # The old ETag no longer answers 304.
    again = await client.get("/api/info/5", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 200
    assert await again.get_json() == updated


async def test_a_deleted_rows_cached_200_becomes_404_at_once(
    client: QuartClient, row: dict[str, Any]
) -> None:
    etag = (await client.get("/api/info/5")).headers["ETag"]
    assert (await client.get("/api/info/5")).headers["Cache-Status"].startswith("quart_app; hit")
    assert await listed(client) == [ROW]
    assert (await client.delete("/api/info/5")).status_code == 204
    gone = await client.get("/api/info/5", headers={"If-None-Match": etag})
    assert gone.status_code == 404
    assert await listed(client) == []


async def test_a_read_in_flight_during_an_update_never_leaves_the_old_row_cached(
    app: Quart, client: QuartClient, row: dict[str, Any]
) -> None:
    store = app.extensions["database"].store
    real_get = store.get
    read_old = asyncio.Event()
    release = asyncio.Event()
    paused: list[bool] = []

    async def get_then_pause(info_id: int) -> Any:
        found = await real_get(info_id)
        if not paused:  # only the first read: the one the cached view makes
            paused.append(True)
            read_old.set()
            await release.wait()
        return found

    store.get = get_then_pause
    slow_read = asyncio.create_task(client.get("/api/info/5"))
    await read_old.wait()  # it has the old row and will store it after the update
    response = await client.put("/api/info/5", json={"name": "new", "money": 1})
    assert response.status_code == 200
    release.set()
    assert await (await slow_read).get_json() == ROW  # it was computed before the update
    assert await read(client) == {"id": 5, "name": "new", "money": "1.00"}
    assert await read(client) == {"id": 5, "name": "new", "money": "1.00"}


# --- signals and the shipped receivers ------------------------------------------------------


async def test_update_and_delete_signals_follow_the_commit(
    app: Quart, client: QuartClient, row: dict[str, Any]
) -> None:
    events: list[tuple[Any, ...]] = []

    @receiver(info_will_update, app)
    async def will_update(sender: Quart, id: int, name: Any, money: Any, **extra: Any) -> None:
        events.append(("will_update", id, name, money))

    @receiver(info_updated, app)
    async def updated(sender: Quart, row: Any, previous: Any, **extra: Any) -> None:
        stored = await sender.extensions["database"].store.get(row.id)  # already committed
        events.append(("updated", stored, previous))

    @receiver(info_update_failed, app)
    async def update_failed(sender: Quart, id: int, error: Exception, **extra: Any) -> None:
        events.append(("update_failed", id, type(error).__name__))

    @receiver(info_will_delete, app)
    async def will_delete(sender: Quart, id: int, **extra: Any) -> None:
        events.append(("will_delete", id))

    @receiver(info_deleted, app)
    async def deleted(sender: Quart, row: Any, **extra: Any) -> None:
        events.append(("deleted", row, await sender.extensions["database"].store.get(row.id)))

    @receiver(info_delete_failed, app)
    async def delete_failed(sender: Quart, id: int, error: Exception, **extra: Any) -> None:
        events.append(("delete_failed", id, type(error).__name__))

    etag = (await client.get("/api/info/5")).headers["ETag"]
    await client.patch("/api/info/5", json={"name": "new"})
    await client.patch("/api/info/5", json={"name": "late"}, headers={"If-Match": etag})
    await client.put("/api/info/8", json={"name": "none", "money": 1})
    await client.delete("/api/info/5")
    await client.delete("/api/info/5")
    names = [event[0] for event in events]
    # The outdated If-Match is refused before any change is tried: no signal, as for a 400.
    assert names == ["will_update", "updated", "will_update", "update_failed",
                     "will_delete", "deleted", "will_delete", "delete_failed"]
    assert events[0] == ("will_update", 5, "new", None)
    _, stored, previous = events[1]
    assert (stored.name, previous.name) == ("new", "redis")
    assert events[3] == ("update_failed", 8, "NoSuchRow")
    assert events[5][1].name == "new" and events[5][2] is None
    assert events[7] == ("delete_failed", 5, "NoSuchRow")


async def test_audit_lines_and_counters_for_updates_and_deletes(
    client: QuartClient, row: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="quart_app.audit")
    await client.put("/api/info/5", json={"name": "new", "money": "2.5"})
    await client.patch("/api/info/5", json={"money": 3})
    await client.delete("/api/info/5")
    await client.delete("/api/info/5")
    audit = [r.getMessage() for r in caplog.records if r.name == "quart_app.audit"]
    assert audit == [
        "info updated: id=5 name='new' money=2.50 (was name='redis' money=588.00)",
        "info updated: id=5 name='new' money=3.00 (was name='new' money=2.50)",
        "info deleted: id=5 name='new' money=3.00",
        "info delete not applied: id=5 (no info row with id 5)",
    ]
    stats = await (await client.get("/api/stats")).get_json()
    assert (stats["info_inserts"], stats["info_updates"], stats["info_deletes"]) == (1, 2, 1)


async def test_openapi_document_describes_the_changes(client: QuartClient) -> None:
    spec = await (await client.get("/api/openapi.json")).get_json()
    row_path = next(path for path in spec["paths"] if path.startswith("/api/info/{"))
    assert {"get", "put", "patch", "delete"} <= set(spec["paths"][row_path])
    assert "post" in spec["paths"]["/api/info/bulk"]
    assert "412" in spec["paths"][row_path]["put"]["responses"]


async def test_database_down_is_503_with_retry_after_for_every_change(
    cache_config: dict[str, Any]
) -> None:
    app = create_app({**cache_config,
                      "DATABASE_URL": f"mysql://root@127.0.0.1:{free_port()}/school",
                      "DATABASE_POOL": {"connect_timeout": 1}})
    async with app.test_app():
        client = app.test_client()
        for method, path, body in (
            ("put", "/api/info/1", {"name": "a", "money": 1}),
            ("patch", "/api/info/1", {"money": 1}),
            ("delete", "/api/info/1", None),
            ("post", "/api/info/bulk", [{"name": "a", "money": 1}]),
        ):
            kwargs = {} if body is None else {"json": body}
            response = await getattr(client, method)(path, **kwargs)
            assert response.status_code == 503, (method, path)
            assert int(response.headers["Retry-After"]) >= 1
            assert (await response.get_json())["error"] == "database_unavailable"
