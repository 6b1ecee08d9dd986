"""`cache.cached` on the memory backend and on the real Redis: every parameter, the keys,
HTTP validators, stampedes, invalidation races and failures."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from quart import Quart
from quart.testing import QuartClient

from quart_app.cache import CacheClient
from quart_app.cache.generations import establish
from quart_app.cache.views import delete_cached
from quart_app.extensions import cache

from ..support import stored_texts
from .view_app import BODIES, create_view_app, runs


@pytest.fixture
async def app(app_config: dict[str, Any]) -> AsyncIterator[Quart]:
    app = create_view_app(app_config)
    async with app.test_app():
        yield app


def client_of(app: Quart) -> CacheClient:
    return cache.client_for(app)


def view(app: Quart, endpoint: str) -> Any:
    return app.view_functions[endpoint]


async def json_of(client: QuartClient, path: str, **kwargs: Any) -> Any:
    response = await client.get(path, **kwargs)
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()


# --- hits, misses and what a response says about it ------------------------------------


async def test_second_request_is_a_hit_with_the_same_body(
    app: Quart, client: QuartClient
) -> None:
    first = await client.get("/probe/plain")
    second = await client.get("/probe/plain")
    assert await first.get_json() == await second.get_json() == {"runs": 1, "version": 0}
    assert runs(app, "plain") == 1
    assert first.headers["Cache-Status"] == "quart_app; fwd=miss; stored"
    assert second.headers["Cache-Status"].startswith("quart_app; hit; ttl=")
    assert second.headers["Content-Type"] == "application/json"


async def test_etag_is_a_strong_hash_of_the_content_and_the_same_in_every_app(
    app: Quart, client: QuartClient, app_config: dict[str, Any]
) -> None:
    response = await client.get("/probe/plain")
    body = await response.get_data(as_text=False)
    content = hashlib.sha256(b"200\napplication/json\nNone\n" + body).hexdigest()[:32]
    assert response.headers["ETag"] == f'"{content}"'
    other = create_view_app({**app_config, "CACHE_KEY_PREFIX": app_config["CACHE_KEY_PREFIX"]
                             + "other-worker:"})
    async with other.test_app():
        again = await other.test_client().get("/probe/plain")
        assert again.headers["ETag"] == response.headers["ETag"]


@pytest.mark.parametrize("if_none_match", ["{etag}", "W/{etag}", '"other", {etag}', "*"])
async def test_if_none_match_gets_304_without_a_body(
    client: QuartClient, if_none_match: str
) -> None:
    etag = (await client.get("/probe/plain")).headers["ETag"]
    for _ in range(2):  # on the entry just stored, then on a hit
        response = await client.get(
            "/probe/plain", headers={"If-None-Match": if_none_match.format(etag=etag)}
        )
        assert response.status_code == 304
        assert await response.get_data(as_text=False) == b""
        assert response.headers["ETag"] == etag
        assert "Cache-Control" in response.headers and "Age" in response.headers


async def test_if_none_match_with_another_tag_gets_the_full_response(client: QuartClient) -> None:
    await client.get("/probe/plain")
    response = await client.get("/probe/plain", headers={"If-None-Match": '"stale-tag"'})
    assert response.status_code == 200
    assert await response.get_json() == {"runs": 1, "version": 0}


async def test_a_404_is_never_answered_304(client: QuartClient) -> None:
    response = await client.get("/probe/status/404")
    assert "ETag" not in response.headers
    again = await client.get("/probe/status/404", headers={"If-None-Match": "*"})
    assert again.status_code == 404


async def test_max_age_is_the_remaining_lifetime_and_age_counts_up(
    client: QuartClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await client.get("/probe/plain")
    assert first.headers["Cache-Control"] == "max-age=60"
    assert first.headers["Age"] == "0"
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 25)
    later = await client.get("/probe/plain")
    assert later.headers["Age"] == "25"
    assert later.headers["Cache-Control"] == "max-age=35"
    assert later.headers["Cache-Status"] == "quart_app; hit; ttl=35"


async def test_a_view_keeps_its_own_etag_and_cache_control(client: QuartClient) -> None:
    for _ in range(2):
        response = await client.get("/probe/own-headers")
        assert response.headers["ETag"] == '"chosen-by-view"'
        assert response.headers["Cache-Control"] == "public, max-age=5"
    response = await client.get("/probe/own-headers", headers={"If-None-Match": '"chosen-by-view"'})
    assert response.status_code == 304


async def test_head_is_served_from_the_get_entry(app: Quart, client: QuartClient) -> None:
    get = await client.get("/probe/plain")
    head = await client.head("/probe/plain")
    assert head.status_code == 200
    assert head.headers["ETag"] == get.headers["ETag"]
    assert head.headers["Cache-Status"].startswith("quart_app; hit")
    await client.head("/probe/sync")  # a HEAD miss stores the entry a GET then hits
    assert (await client.get("/probe/sync")).headers["Cache-Status"].startswith("quart_app; hit")
    assert runs(app, "plain") == runs(app, "sync") == 1


async def test_other_methods_are_never_cached(app: Quart, client: QuartClient) -> None:
    for _ in range(2):
        response = await client.post("/probe/methods")
        assert (await response.get_json())["method"] == "POST"
        assert response.headers["Cache-Status"] == "quart_app; fwd=method"
    assert (await client.get("/probe/methods")).headers["Cache-Status"].endswith("stored")
    assert runs(app, "methods") == 3


async def test_sync_views_are_cached_too(app: Quart, client: QuartClient) -> None:
    assert await json_of(client, "/probe/sync") == await json_of(client, "/probe/sync")
    assert runs(app, "sync") == 1


# --- keys ---------------------------------------------------------------------------------


async def test_different_query_strings_never_share_an_entry(
    app: Quart, client: QuartClient
) -> None:
    a = await json_of(client, "/probe/search?q=a")
    b = await json_of(client, "/probe/search?q=b")
    assert a == {"args": [["q", "a"]]}
    assert b == {"args": [["q", "b"]]}
    assert await json_of(client, "/probe/search?q=a") == a
    assert runs(app, "search") == 2


async def test_argument_order_does_not_matter_but_value_order_does(
    app: Quart, client: QuartClient
) -> None:
    await client.get("/probe/search?a=1&b=2")
    assert (await client.get("/probe/search?b=2&a=1")).headers["Cache-Status"].startswith(
        "quart_app; hit")
    first = await json_of(client, "/probe/search?q=x&q=y")
    second = await json_of(client, "/probe/search?q=y&q=x")
    assert first != second  # a view may read getlist() in order
    assert runs(app, "search") == 3


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("/probe/search?a=1&b=2", "/probe/search?a=1%26b%3D2"),  # separators inside a value
        ("/probe/search?q=", "/probe/search"),
        ("/probe/search?q=a", "/probe/search?Q=a"),
        ("/probe/search?q=a&q=a", "/probe/search?q=a"),
    ],
)
async def test_query_strings_that_only_look_alike_do_not_collide(
    client: QuartClient, one: str, other: str
) -> None:
    assert await json_of(client, one) != await json_of(client, other)


async def test_paths_never_share_an_entry(app: Quart, client: QuartClient) -> None:
    assert (await json_of(client, "/probe/prefix-path/a"))["name"] == "a"
    assert (await json_of(client, "/probe/prefix-path/b"))["name"] == "b"
    assert (await json_of(client, "/probe/prefix-path/a"))["runs"] == 1
    assert runs(app, "prefix-path") == 2


async def test_query_string_false_shares_one_entry_per_path(
    app: Quart, client: QuartClient
) -> None:
    assert await json_of(client, "/probe/no-query?x=1") == await json_of(
        client, "/probe/no-query?x=2")
    assert runs(app, "no-query") == 1


async def test_key_prefix_callable_keeps_entries_apart(app: Quart, client: QuartClient) -> None:
    alice = await json_of(client, "/probe/per-user", headers={"X-User": "alice"})
    bob = await json_of(client, "/probe/per-user", headers={"X-User": "bob"})
    assert (alice["user"], bob["user"]) == ("alice", "bob")
    assert await json_of(client, "/probe/per-user", headers={"X-User": "alice"}) == alice
    assert runs(app, "per-user") == 2


async def test_make_cache_key_replaces_path_and_query_but_key_prefix_is_kept(
    app: Quart, client: QuartClient
) -> None:
    first = await json_of(client, "/probe/custom?page=1", headers={"X-User": "alice"})
    assert await json_of(client, "/probe/custom?page=2", headers={"X-User": "alice"}) == first
    bob = await json_of(client, "/probe/custom?page=1", headers={"X-User": "bob"})
    assert bob["user"] == "bob"
    assert runs(app, "custom") == 2


async def test_cache_none_is_accepted_and_changes_nothing(app: Quart, client: QuartClient) -> None:
    assert await json_of(client, "/probe/cache-none") == await json_of(client, "/probe/cache-none")
    assert runs(app, "cache-none") == 1


async def test_vary_headers_select_the_entry(app: Quart, client: QuartClient) -> None:
    async def lang(value: str | None) -> tuple[str, str]:
        headers = {"Accept-Language": value} if value is not None else {}
        response = await client.get("/probe/vary", headers=headers)
        return await response.get_data(as_text=True), response.headers["Cache-Status"]

    assert await lang("fr") == ("lang=fr", "quart_app; fwd=miss; stored")
    assert await lang("de") == ("lang=de", "quart_app; fwd=miss; stored")
    assert (await lang(None))[0] == "lang=None"
    text, status = await lang("fr")
    assert text == "lang=fr" and status.startswith("quart_app; hit")
    text, status = await lang("de")
    assert text == "lang=de" and status.startswith("quart_app; hit")
    assert runs(app, "vary") == 3


# --- what is stored -------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "stored"), [
    (200, True), (203, True), (301, True), (404, True), (410, True),
    (201, False), (302, False), (500, False), (503, False),
])
async def test_only_the_default_statuses_are_stored(
    app: Quart, client: QuartClient, code: int, stored: bool
) -> None:
    for _ in range(2):
        response = await client.get(f"/probe/status/{code}")
        assert response.status_code == code
    assert runs(app, f"status-{code}") == (1 if stored else 2)


async def test_a_raised_404_is_cached_like_a_returned_one(
    app: Quart, client: QuartClient
) -> None:
    for _ in range(2):
        response = await client.get("/probe/missing/1")
        assert response.status_code == 404
        assert (await response.get_json())["error"] == "not_found"  # the app's error handler
    assert runs(app, "missing") == 1


@pytest.mark.parametrize("path", ["/probe/cookie", "/probe/private", "/probe/vary-star"])
async def test_responses_for_one_client_are_never_stored(
    app: Quart, client: QuartClient, path: str
) -> None:
    name = path.rsplit("/", 1)[1]
    first = await client.get(path)
    second = await client.get(path)
    assert await first.get_data(as_text=True) != await second.get_data(as_text=True)
    assert runs(app, name) == 2


async def test_response_filter_replaces_the_status_rule(app: Quart, client: QuartClient) -> None:
    for _ in range(2):
        await client.get("/probe/filtered/500")
        await client.get("/probe/filtered/200")
    assert runs(app, "filtered-500") == 1
    assert runs(app, "filtered-200") == 2


@pytest.mark.parametrize("kind", list(BODIES))
async def test_bodies_come_back_byte_for_byte(
    app: Quart, client: QuartClient, kind: str
) -> None:
    miss = await client.get(f"/probe/body/{kind}")
    hit = await client.get(f"/probe/body/{kind}")
    assert hit.headers["Cache-Status"].startswith("quart_app; hit")
    assert await miss.get_data(as_text=False) == BODIES[kind]
    assert await hit.get_data(as_text=False) == BODIES[kind]
    assert hit.headers["Content-Length"] == str(len(BODIES[kind]))
    assert runs(app, f"body-{kind}") == 1


async def test_an_entry_is_status_headers_and_body_in_json(
    client: QuartClient, app: Quart
) -> None:
    await client.get("/probe/body/binary")
    texts = [text for text in await stored_texts(client_of(app)) if '"status"' in text]
    assert len(texts) == 1
    assert '"status":200' in texts[0] and '"headers"' in texts[0]
    assert texts[0].isascii()  # JSON; the body is base64 inside it


# --- timeout, unless, forced_update, no-cache --------------------------------------------


async def test_timeout_expires_the_entry(app: Quart, client: QuartClient) -> None:
    assert (await json_of(client, "/probe/short"))["runs"] == 1
    assert (await json_of(client, "/probe/short"))["runs"] == 1
    await asyncio.sleep(0.4)
    assert (await json_of(client, "/probe/short"))["runs"] == 2


async def test_timeout_zero_never_expires_and_sends_no_max_age(
    app: Quart, client: QuartClient
) -> None:
    await client.get("/probe/forever")
    response = await client.get("/probe/forever")
    assert response.headers["Cache-Status"] == "quart_app; hit"
    assert "Cache-Control" not in response.headers
    assert runs(app, "forever") == 1


async def test_unless_bypasses_the_cache(app: Quart, client: QuartClient) -> None:
    await client.get("/probe/unless")
    skipped = await client.get("/probe/unless?skip=1")
    assert skipped.headers["Cache-Status"] == "quart_app; fwd=bypass"
    await client.get("/probe/unless?skip=1")
    assert runs(app, "unless") == 3
    await client.get("/probe/unless-args/0")
    await client.get("/probe/unless-args/0")
    await client.get("/probe/unless-args/7")
    await client.get("/probe/unless-args/7")
    assert runs(app, "unless-args") == 3


async def test_forced_update_runs_the_view_and_replaces_the_entry(
    app: Quart, client: QuartClient
) -> None:
    assert (await json_of(client, "/probe/forced"))["runs"] == 1
    forced = await client.get("/probe/forced", headers={"X-Refresh": "1"})
    assert (await forced.get_json())["runs"] == 2
    assert forced.headers["Cache-Status"] == "quart_app; fwd=request; stored"
    assert (await json_of(client, "/probe/forced"))["runs"] == 2


async def test_request_no_cache_is_ignored_unless_the_setting_allows_it(
    app: Quart, client: QuartClient, app_config: dict[str, Any]
) -> None:
    await client.get("/probe/plain")
    ignored = await client.get("/probe/plain", headers={"Cache-Control": "no-cache"})
    assert (await ignored.get_json())["runs"] == 1
    honouring = create_view_app({**app_config, "CACHE_HONOR_NO_CACHE": True,
                                 "CACHE_KEY_PREFIX": app_config["CACHE_KEY_PREFIX"] + "h:"})
    async with honouring.test_app():
        other = honouring.test_client()
        await other.get("/probe/plain")
        fresh = await other.get("/probe/plain", headers={"Cache-Control": "no-cache"})
        assert (await fresh.get_json())["runs"] == 2
        assert fresh.headers["Cache-Status"] == "quart_app; fwd=request; stored"
        assert (await json_of(other, "/probe/plain"))["runs"] == 2


# --- invalidation ---------------------------------------------------------------------------


async def test_delete_cached_whole_view_path_and_query(app: Quart, client: QuartClient) -> None:
    search = view(app, "search")
    for path in ("/probe/search?q=a", "/probe/search?q=b"):
        await client.get(path)
    await cache_call(app, delete_cached, search, "/probe/search", {"q": "a"})
    assert (await client.get("/probe/search?q=a")).headers["Cache-Status"] == (
        "quart_app; fwd=stale; stored")
    assert (await client.get("/probe/search?q=b")).headers["Cache-Status"].startswith(
        "quart_app; hit")
    await cache_call(app, delete_cached, search, "/probe/search")
    assert (await client.get("/probe/search?q=b")).headers["Cache-Status"].startswith(
        "quart_app; fwd=stale")
    await cache_call(app, delete_cached, search)
    assert (await client.get("/probe/search?q=a")).headers["Cache-Status"].startswith(
        "quart_app; fwd=stale")
    assert runs(app, "search") == 5


async def test_delete_cached_query_args_forms(app: Quart, client: QuartClient) -> None:
    search = view(app, "search")
    await client.get("/probe/search?q=x&q=y&a=1")
    pairs = [("q", "x"), ("a", 1), ("q", "y")]
    await cache_call(app, delete_cached, search, "/probe/search", pairs)
    assert "stale" in (await client.get("/probe/search?q=x&q=y&a=1")).headers["Cache-Status"]
    await cache_call(app, delete_cached, search, "/probe/search", {"a": "1", "q": ["x", "y"]})
    assert "stale" in (await client.get("/probe/search?a=1&q=x&q=y")).headers["Cache-Status"]


async def test_delete_cached_on_a_view_that_ignores_the_query_drops_the_path(
    app: Quart, client: QuartClient
) -> None:
    await client.get("/probe/no-query?x=1")
    await cache_call(app, delete_cached, view(app, "no_query"), "/probe/no-query", {"x": "1"})
    assert (await json_of(client, "/probe/no-query?x=2"))["runs"] == 2


async def test_delete_cached_refuses_what_it_cannot_name(app: Quart) -> None:
    async def not_cached() -> str:
        return ""

    with pytest.raises(TypeError, match="not decorated"):
        await cache_call(app, delete_cached, not_cached)
    with pytest.raises(TypeError, match="needs a path"):
        await cache_call(app, delete_cached, view(app, "search"), None, {"q": "a"})


async def test_facade_delete_cached_in_an_app_context(app: Quart, client: QuartClient) -> None:
    await client.get("/probe/plain")
    async with app.app_context():
        await cache.delete_cached(view(app, "plain"))
    assert (await json_of(client, "/probe/plain"))["runs"] == 2


async def test_a_response_computed_before_an_invalidation_is_never_served_after_it(
    app: Quart, client: QuartClient
) -> None:
    # The race a plain delete loses: read, then the insert and its invalidation, then store.
    entered, release = app.extensions["probe"].gate("race")
    slow_reader = asyncio.ensure_future(client.get("/probe/gated/race"))
    await entered.wait()  # the view has read version 0
    app.extensions["probe"].version = 1  # the insert commits, then invalidates:
    await cache_call(app, delete_cached, view(app, "gated"), "/probe/gated/race")
    release.set()
    assert (await (await slow_reader).get_json())["version"] == 0  # it started first: fine
    entered.clear()
    after = await client.get("/probe/gated/race")
    assert (await after.get_json())["version"] == 1
    assert after.headers["Cache-Status"] == "quart_app; fwd=stale; stored"


async def test_a_request_after_an_invalidation_never_joins_a_flight_from_before_it(
    app: Quart, client: QuartClient
) -> None:
    entered, release = app.extensions["probe"].gate("join")
    before = asyncio.ensure_future(client.get("/probe/gated/join"))
    await entered.wait()
    entered.clear()
    app.extensions["probe"].version = 1
    await cache_call(app, delete_cached, view(app, "gated"), "/probe/gated/join")
    after = asyncio.ensure_future(client.get("/probe/gated/join"))
    # It runs the view itself instead of waiting for the one that read version 0.
    await asyncio.wait_for(entered.wait(), timeout=5)
    assert runs(app, "gated-join") == 2
    release.set()
    assert (await (await after).get_json())["version"] == 1
    assert (await (await before).get_json())["version"] == 0


async def test_a_404_is_not_cached_across_the_insert_that_fills_it(
    app: Quart, client: QuartClient
) -> None:
    assert (await client.get("/probe/missing/1")).status_code == 404
    app.extensions["probe"].version = 1
    await cache_call(app, delete_cached, view(app, "missing"), "/probe/missing/1")
    assert (await client.get("/probe/missing/1")).status_code == 200


async def cache_call(app: Quart, function: Any, *args: Any) -> Any:
    return await function(client_of(app), *args)


# --- stampedes ------------------------------------------------------------------------------


async def test_a_hundred_concurrent_misses_run_the_view_once(
    app: Quart, client: QuartClient
) -> None:
    responses = await asyncio.gather(*(client.get("/probe/slow?seconds=0.2")
                                       for _ in range(100)))
    assert runs(app, "slow") == 1
    assert {(await response.get_json())["runs"] for response in responses} == {1}
    statuses = sorted(response.headers["Cache-Status"] for response in responses)
    assert statuses.count("quart_app; fwd=miss; stored") == 1
    collapsed = statuses.count("quart_app; fwd=miss; stored; collapsed")
    # A request whose lookup comes after the entry was stored is a hit (on the cluster the
    # hundred lookups can take longer than the view's 0.2 s).
    hits = sum(status.startswith("quart_app; hit") for status in statuses)
    assert collapsed > 0
    assert collapsed + hits == 99
    stats = cache.runtime_for(app).stats.of("tests.cache.view_app.add_probe_views.<locals>.slow")
    assert stats == {"hit": hits, "miss": 1 + collapsed, "stale": 0, "error": 0, "bypass": 0}


async def test_a_failing_view_fails_every_waiting_request_once(
    app: Quart, client: QuartClient
) -> None:
    responses = await asyncio.gather(*(client.get("/probe/boom") for _ in range(20)))
    assert {response.status_code for response in responses} == {500}
    assert runs(app, "boom") == 1
    assert (await client.get("/probe/boom")).status_code == 500
    assert runs(app, "boom") == 2  # a failure is not cached


async def test_requests_waiting_on_a_response_for_one_client_run_their_own(
    app: Quart, client: QuartClient
) -> None:
    responses = await asyncio.gather(*(client.get("/probe/cookie") for _ in range(5)))
    bodies = {await response.get_data(as_text=True) for response in responses}
    assert len(bodies) == 5  # nobody received another client's Set-Cookie response
    assert runs(app, "cookie") == 5


async def test_waiting_requests_with_other_vary_values_run_their_own(
    app: Quart, client: QuartClient
) -> None:
    languages = ["fr", "de", "fr", "it", "de"]
    responses = await asyncio.gather(*(
        client.get("/probe/vary", headers={"Accept-Language": lang}) for lang in languages
    ))
    got = [await response.get_data(as_text=True) for response in responses]
    assert got == [f"lang={lang}" for lang in languages]


# --- stats ----------------------------------------------------------------------------------


async def test_counts_per_view_in_code_and_in_readyz(app: Quart, client: QuartClient) -> None:
    await client.get("/probe/plain")
    await client.get("/probe/plain")
    await cache_call(app, delete_cached, view(app, "plain"))
    await client.get("/probe/plain")
    await client.get("/probe/unless?skip=1")
    name = "tests.cache.view_app.add_probe_views.<locals>.plain"
    async with app.app_context():
        counts = cache.view_stats()
    assert counts[name] == {"hit": 1, "miss": 1, "stale": 1, "error": 0, "bypass": 0}
    ready = await (await client.get("/readyz")).get_json()
    assert ready["checks"]["cache"]["views"][name] == counts[name]
    assert ready["checks"]["cache"]["views"][name.replace("plain", "unless")]["bypass"] == 1


async def test_tokens_are_shared_by_concurrent_readers(app: Quart) -> None:
    client = client_of(app)
    scopes = ["gen:a", "gen:b"]
    made = await asyncio.gather(*(establish(client, scopes, [None, None], 60)
                                  for _ in range(20)))
    assert len(set(made)) == 1


# --- the app's own cached views -------------------------------------------------------------


async def test_visits_are_cached_unless_this_worker_counted_new_ones(
    app_config: dict[str, Any],
) -> None:
    app = create_view_app({**app_config, "VISITS_FLUSH_INTERVAL": 60})
    async with app.test_app():
        client = app.test_client()
        first = await client.get("/api/stats/visits")
        assert first.headers["Cache-Status"] == "quart_app; fwd=miss; stored"
        # That read was itself a visit, not flushed yet: the next read recomputes.
        second = await client.get("/api/stats/visits")
        assert second.headers["Cache-Status"] == "quart_app; fwd=request; stored"
        assert (await second.get_json())["visits"]["/api/stats/visits"] == 1
    quiet = create_view_app({**app_config, "RECEIVERS": {"visits": False},
                             "CACHE_KEY_PREFIX": app_config["CACHE_KEY_PREFIX"] + "quiet:"})
    async with quiet.test_app():
        client = quiet.test_client()
        await client.get("/api/stats/visits")
        assert (await client.get("/api/stats/visits")).headers["Cache-Status"].startswith(
            "quart_app; hit")
