"""Hits answered before Quart (`quart_app.cache.fast_hits`): the same answers, fewer steps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.signals import request_started

from quart_app import create_app
from quart_app.extensions import cache

# Headers that differ between two answers of one entry for reasons other than the path.
PER_ANSWER = {"age", "x-request-id", "date", "cache-control"}


@pytest.fixture
async def apps(
    cache_config: dict[str, Any], tmp_path: Path
) -> AsyncIterator[tuple[Quart, Quart]]:
    """The app with fast hits, and the same app (same database and cache) without them."""
    config = {**cache_config, "DATABASE_URL": f"sqlite:///{tmp_path / 'fast.sqlite3'}"}
    fast, slow = create_app(config), create_app({**config, "CACHE_FAST_HITS": False})
    async with fast.test_app(), slow.test_app():
        yield fast, slow


class RequestsSeen:
    """Counts Quart's `request_started` for one app: it is sent only when Quart handles one."""

    def __init__(self, app: Quart) -> None:
        self.count = 0
        self.app = app
        request_started.connect(self.heard, sender=app, weak=False)

    async def heard(self, sender: Quart, **extra: Any) -> None:
        self.count += 1

    def close(self) -> None:
        request_started.disconnect(self.heard, sender=self.app)



async def answer(app: Quart, path: str, **options: Any) -> tuple[int, dict[str, str], bytes]:
    response = await app.test_client().open(path, **options)
    body = await response.get_data()
    headers = {name.lower(): value for name, value in response.headers.items()
               if name.lower() not in PER_ANSWER}
    return response.status_code, headers, body


async def test_a_hit_is_answered_without_entering_quart(apps: tuple[Quart, Quart]) -> None:
    fast, _ = apps
    client = fast.test_client()
    first = await client.get("/api/info")
    assert "fwd=miss" in first.headers["Cache-Status"]
    seen = RequestsSeen(fast)
    try:
        hit = await client.get("/api/info")
    finally:
        seen.close()
    assert hit.headers["Cache-Status"].startswith("quart_app; hit")
    assert seen.count == 0  # Quart never saw it
    assert await hit.get_json() == await first.get_json()
    assert hit.headers["X-Request-ID"]
    assert int(hit.headers["Content-Length"]) == len(await hit.get_data())


async def test_without_fast_hits_quart_answers_every_request(apps: tuple[Quart, Quart]) -> None:
    _, slow = apps
    client = slow.test_client()
    await client.get("/api/info")
    seen = RequestsSeen(slow)
    try:
        hit = await client.get("/api/info")
    finally:
        seen.close()
    assert hit.headers["Cache-Status"].startswith("quart_app; hit")
    assert seen.count == 1


@pytest.mark.parametrize("path", ["/api/info", "/api/info?limit=2", "/api/info/7"])
async def test_fast_and_quart_hits_answer_alike(apps: tuple[Quart, Quart], path: str) -> None:
    fast, slow = apps
    await fast.test_client().post("/api/info", json={"id": 5, "name": "a", "money": "1.50"})
    for app in apps:  # make the entry; both apps share the cache and the database
        await app.test_client().get(path)
    fast_hit, slow_hit = await answer(fast, path), await answer(slow, path)
    assert fast_hit == slow_hit
    assert fast_hit[1]["cache-status"].startswith("quart_app; hit")
    etag = fast_hit[1].get("etag")
    if etag is not None:  # a 200 is validated; the cached 404 is not
        not_modified = await answer(fast, path, headers={"If-None-Match": etag})
        assert not_modified == await answer(slow, path, headers={"If-None-Match": etag})
        assert not_modified[0] == 304 and not_modified[2] == b""
    head = await answer(fast, path, method="HEAD")
    assert head[0] == fast_hit[0] and head[2] == b""


async def test_reads_after_an_acknowledged_insert_see_it(apps: tuple[Quart, Quart]) -> None:
    fast, _ = apps
    client = fast.test_client()
    assert (await client.get("/api/info/9")).status_code == 404
    assert "hit" in (await client.get("/api/info/9")).headers["Cache-Status"]
    await client.get("/api/info")
    created = await client.post("/api/info", json={"id": 9, "name": "b", "money": "2"})
    assert created.status_code == 201
    row = await client.get("/api/info/9")
    assert row.status_code == 200 and (await row.get_json())["name"] == "b"
    listed = await client.get("/api/info")
    assert 9 in [item["id"] for item in (await listed.get_json())["items"]]


async def test_fast_hits_are_counted_as_visits_and_hits(apps: tuple[Quart, Quart]) -> None:
    fast, _ = apps
    client = fast.test_client()
    for _ in range(3):
        await client.get("/api/info")
    visits = await (await client.get("/api/stats/visits")).get_json()
    assert visits["visits"]["/api/info"] == 3
    stats = cache.runtime_for(fast).stats.snapshot()
    name = next(view for view in stats if view.endswith("list_info"))
    assert stats[name]["hit"] == 2 and stats[name]["miss"] == 1


async def test_a_given_request_id_is_echoed_and_a_bad_one_replaced(
    apps: tuple[Quart, Quart]
) -> None:
    fast, _ = apps
    client = fast.test_client()
    await client.get("/api/info")
    given = await client.get("/api/info", headers={"X-Request-ID": "abc-123"})
    assert "hit" in given.headers["Cache-Status"] and given.headers["X-Request-ID"] == "abc-123"
    bad = await client.get("/api/info", headers={"X-Request-ID": "no spaces allowed"})
    assert bad.headers["X-Request-ID"] != "no spaces allowed"
    assert len(bad.headers["X-Request-ID"]) == 32


async def test_views_that_need_the_request_go_through_quart(tmp_path: Path) -> None:
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'u.sqlite3'}"})

    @app.get("/test/unless")
    @cache.cached(unless=lambda: False)
    async def with_unless() -> dict[str, str]:
        return {"ok": "yes"}

    async with app.test_app():
        client = app.test_client()
        await client.get("/test/unless")
        seen = RequestsSeen(app)
        try:
            hit = await client.get("/test/unless")
        finally:
            seen.close()
    assert "hit" in hit.headers["Cache-Status"]
    assert seen.count == 1  # served from the cache, but by the decorator inside Quart


async def list_requests_counted(client: Any) -> float:
    """`quart_app_http_requests_total` for GET /api/info 200 (the registry is per process)."""
    text = await (await client.get("/metrics")).get_data(as_text=True)
    for line in text.splitlines():
        if (line.startswith("quart_app_http_requests_total{") and 'route="/api/info"' in line
                and 'method="GET"' in line and 'status="200"' in line):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_fast_hits_are_counted_in_metrics_under_their_route(
    apps: tuple[Quart, Quart]
) -> None:
    fast, _ = apps
    client = fast.test_client()
    before = await list_requests_counted(client)
    for _ in range(3):
        await client.get("/api/info")  # a miss, then two fast hits
    assert await list_requests_counted(client) == before + 3


async def test_an_entry_answered_many_times_is_not_answered_after_an_insert(
    apps: tuple[Quart, Quart],
) -> None:
    # The fast path keeps what it decoded of an entry's stored text; the entry's tokens are
    # still compared with the current ones on every hit.
    fast, _ = apps
    client = fast.test_client()
    for _ in range(3):
        listed = await client.get("/api/info")
    assert listed.headers["Cache-Status"].startswith("quart_app; hit")
    for info_id in (1, 2):
        created = await client.post("/api/info", json={"id": info_id, "name": "c", "money": "1"})
        assert created.status_code == 201
        for _ in range(3):
            listed = await client.get("/api/info")
            assert [item["id"] for item in (await listed.get_json())["items"]] == list(
                range(info_id, 0, -1))


@pytest.mark.parametrize("headers", [
    [("If-None-Match", '"other"'), ("If-None-Match", "{etag}")],
    [("If-None-Match", "{etag}"), ("If-None-Match", '"other"')],
    [("Cache-Control", "max-age=0, no-cache")],
    [("Cache-Control", "max-age=0"), ("Cache-Control", "no-cache")],
    [("cache-control", "NO-CACHE")],
], ids=["etag-second", "etag-first", "no-cache", "no-cache-second", "upper-case"])
async def test_repeated_and_odd_request_headers_are_read_alike_on_both_paths(
    apps: tuple[Quart, Quart], headers: list[tuple[str, str]],
) -> None:
    fast, slow = apps
    for app in apps:
        await app.test_client().get("/api/info")
    etag = (await fast.test_client().get("/api/info")).headers["ETag"]
    sent = [(name, value.replace("{etag}", etag)) for name, value in headers]
    fast_answer, slow_answer = await answer(fast, "/api/info", headers=sent), await answer(
        slow, "/api/info", headers=sent)
    assert fast_answer[0] == slow_answer[0]
    assert fast_answer[2] == slow_answer[2]
