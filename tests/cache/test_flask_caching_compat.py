"""Flask-Caching's decorator tests (tests/test_cache.py, test_memoize.py, test_hash_method.py),
ported to async, on a user's own Quart app with the memory backend and the real Redis."""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from quart import Quart, Response, request
from quart.testing import QuartClient

from quart_app.cache import Cache, CachedResponse

from ..support import seconds_left

counter = itertools.count()


def fresh() -> int:
    """A new number per call: Flask-Caching's tests use random values for the same purpose."""
    return next(counter)


@pytest.fixture
def plain_app() -> Quart:
    return Quart(__name__)


@pytest.fixture
def cache(plain_app: Quart, cache_config: dict[str, Any]) -> Cache:
    return Cache(plain_app, config=cache_config)


@pytest.fixture
async def serving(plain_app: Quart, cache: Cache) -> AsyncIterator[Quart]:
    """The app serving, with an app context: what Flask-Caching's tests get from `app`."""
    async with plain_app.test_app(), plain_app.app_context():
        yield plain_app


@pytest.fixture
def client(plain_app: Quart) -> QuartClient:
    return plain_app.test_client()


# --- cached on a plain function -----------------------------------------------------------


async def test_cached_function_returns_and_caches_its_value(cache: Cache, serving: Quart) -> None:
    @cache.cached(key_prefix="MyBits")
    async def get_random_bits() -> list[int]:
        return [fresh() for _ in range(5)]

    first = await get_random_bits()
    assert isinstance(first, list)
    assert await get_random_bits() == first
    await cache.delete_cached(get_random_bits)
    assert await get_random_bits() != first


async def test_cached_function_called_by_a_view_caches_the_value_not_the_view(
    plain_app: Quart, cache: Cache, serving: Quart, client: QuartClient
) -> None:
    runs: Counter[str] = Counter()

    @cache.cached(timeout=60, key_prefix="shared-list")
    def shared_list() -> list[int]:  # sync, as in Flask-Caching's docs
        runs["list"] += 1
        return [1, 2, 3]

    @plain_app.get("/total")
    async def total() -> dict[str, Any]:
        runs["view"] += 1
        return {"total": sum(await shared_list())}

    for _ in range(2):
        response = await client.get("/total")
        assert await response.get_json() == {"total": 6}
        assert "Cache-Status" not in response.headers
    assert runs == {"view": 2, "list": 1}


async def test_cached_function_with_the_path_in_its_prefix_needs_a_request(
    cache: Cache, serving: Quart
) -> None:
    @cache.cached()
    async def needs_path() -> int:
        return 1

    with pytest.raises(RuntimeError, match="give it a key_prefix without %s"):
        await needs_path()


async def test_cached_function_does_not_cache_none_unless_cache_none(
    cache: Cache, serving: Quart
) -> None:
    runs: Counter[str] = Counter()

    @cache.cached(key_prefix="none-default")
    async def not_cached() -> None:
        runs["default"] += 1

    @cache.cached(key_prefix="none-cached", cache_none=True)
    async def cached_none() -> None:
        runs["cache_none"] += 1

    for _ in range(3):
        assert await not_cached() is None
        assert await cached_none() is None
    assert runs == {"default": 3, "cache_none": 1}


async def test_cached_function_forced_update_and_unless(cache: Cache, serving: Quart) -> None:
    switches = {"force": False, "skip": False}

    @cache.cached(key_prefix="switches", forced_update=lambda: switches["force"],
                  unless=lambda: switches["skip"])
    async def value() -> int:
        return fresh()

    first = await value()
    assert await value() == first
    switches["force"] = True
    forced = await value()
    assert forced != first
    switches["force"] = False
    assert await value() == forced  # the forced run replaced the entry
    switches["skip"] = True
    assert await value() != forced
    switches["skip"] = False
    assert await value() == forced


async def test_cached_function_response_filter_gets_the_value(
    cache: Cache, serving: Quart
) -> None:
    @cache.cached(key_prefix="filtered", response_filter=lambda value: value % 2 == 1)
    async def odd_only() -> int:
        return fresh()

    seen = [await odd_only() for _ in range(4)]
    odd = next(value for value in seen if value % 2 == 1)
    assert seen[seen.index(odd):] == [odd] * (len(seen) - seen.index(odd))


async def test_is_stale_is_asked_on_hits_with_the_cached_value(
    cache: Cache, serving: Quart
) -> None:
    runs: Counter[str] = Counter()
    judged: list[int] = []

    def is_stale(value: int) -> bool:
        judged.append(value)
        return value < 2

    @cache.cached(5, "is_stale", None, None, is_stale)  # Flask-Caching's positions
    async def counted() -> int:
        runs["counted"] += 1
        return runs["counted"]

    assert await counted() == 1
    assert judged == []  # only a hit is judged
    assert await counted() == 2  # the cached 1 is stale: it ran again and stored 2
    assert (judged, runs["counted"]) == ([1], 2)
    assert await counted() == 2
    assert (judged, runs["counted"]) == ([1, 2], 2)

    seen: list[tuple[int, int]] = []

    @cache.memoize(5, is_stale=lambda value, param: seen.append((value, param)) or False)
    async def echo(param: int) -> int:
        return param

    @cache.memoize(5, None, None, lambda: True, lambda value: seen.append((0, 0)) or True)
    async def always_forced() -> int:
        return 1

    assert await echo(1) == await echo(1) == 1
    await always_forced()
    await always_forced()
    assert seen == [(1, 1)]  # the value, then the call's own arguments; never when forced


async def test_a_views_is_stale_gets_the_cached_response(
    plain_app: Quart, cache: Cache, serving: Quart, client: QuartClient
) -> None:
    @plain_app.get("/judged")
    @cache.cached(60, is_stale=lambda response: response.headers.get("X-Version") == "old")
    async def judged() -> tuple[str, dict[str, str]]:
        version = request.args.get("v", "new")
        return f"run {fresh()}", {"X-Version": version}

    async def body(path: str) -> bytes:
        return await (await client.get(path)).get_data()

    assert await body("/judged") == await body("/judged")
    assert await body("/judged?v=old") != await body("/judged?v=old")  # judged stale
    second = await client.get("/judged?v=old")
    assert second.headers["Cache-Status"] == "quart_app; fwd=stale; stored"


# --- cached on a view ------------------------------------------------------------------------


async def test_response_filter_gets_what_the_view_returned(
    plain_app: Quart, cache: Cache, serving: Quart, client: QuartClient
) -> None:
    @plain_app.get("/status")
    @cache.cached(60, response_filter=lambda returned: returned[1] < 400)
    async def status() -> tuple[str, int]:
        return f"run {fresh()}", int(request.args.get("code", "200"))

    @plain_app.get("/response")
    @cache.cached(60, response_filter=lambda returned: returned.status_code == 200)
    async def response() -> Response:
        return Response(f"run {fresh()}", status=int(request.args.get("code", "200")))

    for path in ("/status", "/response"):
        ok = await (await client.get(path)).get_data(as_text=True)
        assert await (await client.get(path)).get_data(as_text=True) == ok
        failed = await (await client.get(f"{path}?code=500")).get_data(as_text=True)
        assert await (await client.get(f"{path}?code=500")).get_data(as_text=True) != failed


async def test_a_views_forced_update_gets_the_view_arguments_if_it_takes_any(
    plain_app: Quart, cache: Cache, serving: Quart, client: QuartClient
) -> None:
    @plain_app.get("/item/<int:number>")
    @cache.cached(60, forced_update=lambda number: number == 0)
    async def item(number: int) -> str:
        return f"{number}: run {fresh()}"

    async def body(path: str) -> bytes:
        return await (await client.get(path)).get_data()

    assert await body("/item/1") == await body("/item/1")
    assert await body("/item/0") != await body("/item/0")


async def test_assigning_cache_timeout_changes_entries_stored_afterwards(
    plain_app: Quart, cache: Cache, serving: Quart, client: QuartClient
) -> None:
    @plain_app.get("/timed")
    @cache.cached(timeout=600)
    async def timed() -> str:
        return f"run {fresh()}"

    assert timed.cache_timeout == 600  # type: ignore[attr-defined]
    first = await client.get("/timed")
    assert first.headers["Cache-Control"] == "max-age=600"
    timed.cache_timeout = 30  # type: ignore[attr-defined]
    assert await (await client.get("/timed")).get_data() == await first.get_data()
    assert await cache.delete_cached(timed)
    second = await client.get("/timed")
    assert second.headers["Cache-Control"] == "max-age=30"
    assert timed.uncached.__name__ == "timed"  # type: ignore[attr-defined]


async def test_a_cached_response_sets_its_own_lifetime(
    plain_app: Quart, cache: Cache, serving: Quart, client: QuartClient
) -> None:
    @plain_app.get("/own-lifetime")
    @cache.cached(timeout=600)
    async def own_lifetime() -> CachedResponse:
        return CachedResponse(Response(f"run {fresh()}", status=203), timeout=20)

    first = await client.get("/own-lifetime")
    assert (first.status_code, first.headers["Cache-Control"]) == (203, "max-age=20")
    second = await client.get("/own-lifetime")
    assert await second.get_data() == await first.get_data()
    assert second.headers["Cache-Status"].startswith("quart_app; hit; ttl=")
    assert int(second.headers["Cache-Status"].rsplit("=", 1)[1]) <= 20


async def test_make_cache_key_names_the_entry_of_a_path_and_query(
    plain_app: Quart, cache: Cache, serving: Quart, client: QuartClient
) -> None:
    @plain_app.get("/works")
    @cache.cached(timeout=60)
    async def works() -> str:
        return f"run {fresh()}"

    first = await (await client.get("/works?limit=15&mock=true")).get_data()
    key = works.make_cache_key(path="/works", query_args="mock=true&limit=15")  # type: ignore
    assert await cache.has(key)
    assert key != works.make_cache_key(path="/works", query_args="limit=15")  # type: ignore
    async with plain_app.test_request_context("/works?mock=true&limit=15"):
        assert works.make_cache_key() == key  # type: ignore[attr-defined]
    assert await cache.delete(key)
    assert await (await client.get("/works?limit=15&mock=true")).get_data() != first


@pytest.mark.parametrize("query_args", ["limit=15&offset=20", "?offset=20&limit=15",
                                        {"limit": 15, "offset": 20},
                                        [("offset", "20"), ("limit", "15")]])
async def test_delete_cached_takes_a_query_string_a_mapping_or_pairs(
    plain_app: Quart, cache: Cache, serving: Quart, client: QuartClient, query_args: Any
) -> None:
    @plain_app.get("/works")
    @cache.cached(timeout=60)
    async def works() -> str:
        return f"run {fresh()}"

    async def body(query: str) -> bytes:
        return await (await client.get(f"/works?{query}")).get_data()

    page_two, page_three = await body("limit=15&offset=20"), await body("limit=15&offset=40")
    assert await cache.delete_cached(works, "/works", query_args) is True
    assert await body("offset=20&limit=15") != page_two
    assert await body("limit=15&offset=40") == page_three
    assert await cache.delete_cached(works, "/works", "limit=1") is False  # nothing was there


async def test_response_hit_indication_marks_responses_from_the_cache(
    plain_app: Quart, cache: Cache, serving: Quart, client: QuartClient
) -> None:
    @plain_app.get("/marked")
    @cache.cached(timeout=60, response_hit_indication=True)
    async def marked() -> str:
        return "marked"

    assert "hit_cache" not in (await client.get("/marked")).headers
    assert (await client.get("/marked")).headers["hit_cache"] == "True"


async def test_hash_method_and_source_check_change_the_key(
    plain_app: Quart, cache: Cache, serving: Quart
) -> None:
    def make(**options: Any) -> Any:
        @cache.cached(timeout=60, **options)
        async def view() -> str:
            return "v"
        return view

    keys = {make(**options).make_cache_key(path="/p")
            for options in ({}, {"hash_method": hashlib.md5}, {"source_check": True})}
    assert len(keys) == 3


# --- memoize -------------------------------------------------------------------------------


async def test_memoize_none_needs_cache_none(cache: Cache, serving: Quart) -> None:
    runs: Counter[str] = Counter()

    @cache.memoize()
    async def nothing(name: str) -> None:
        runs[name] += 1

    @cache.memoize(cache_none=True)
    async def kept(name: str) -> None:
        runs[name] += 1

    for _ in range(3):
        await nothing("default")
        await kept("cache_none")
    assert runs == {"default": 3, "cache_none": 1}


async def test_memoize_forced_update_with_and_without_arguments(
    cache: Cache, serving: Quart
) -> None:
    forcing = {"now": False}

    @cache.memoize(forced_update=lambda: forcing["now"])
    async def plain(a: int) -> int:
        return a + fresh()

    @cache.memoize(forced_update=lambda a: a == 2)
    async def per_argument(a: int) -> int:
        return a + fresh()

    first = await plain(1)
    assert await plain(1) == first
    forcing["now"] = True
    assert await plain(1) != first
    kept = await per_argument(1)
    assert await per_argument(1) == kept
    assert await per_argument(2) != await per_argument(2)


async def test_memoize_response_filter_decides_what_is_stored(
    cache: Cache, serving: Quart
) -> None:
    @cache.memoize(response_filter=lambda value: value["ok"])
    async def fetch(name: str) -> dict[str, Any]:
        return {"ok": name == "good", "run": fresh()}

    assert await fetch("good") == await fetch("good")
    assert await fetch("bad") != await fetch("bad")


async def test_memoize_attributes(cache: Cache, serving: Quart) -> None:
    @cache.memoize(600)
    async def big_foo(a: int, b: int) -> int:
        return a + b + fresh()

    assert big_foo.cache_timeout == 600  # type: ignore[attr-defined]
    result = await big_foo(5, 2)
    key = big_foo.make_cache_key(big_foo.uncached, 5, 2)  # type: ignore[attr-defined]
    assert await cache.has(key)
    assert 590 < (await seconds_left(cache, key) or 0) <= 600
    assert await big_foo.uncached(5, 2) != result  # type: ignore[attr-defined]
    await big_foo.delete_memoized()  # type: ignore[attr-defined]
    assert await big_foo(5, 2) != result
    big_foo.cache_timeout = 30  # type: ignore[attr-defined]
    await cache.delete_memoized(big_foo, 5, 2)
    await big_foo(5, 2)
    assert 0 < (await seconds_left(cache, key) or 0) <= 30


async def test_memoize_hash_method_and_source_check(cache: Cache, serving: Quart) -> None:
    @cache.memoize(make_name=lambda name: "same", hash_method=hashlib.md5)
    async def first(a: int) -> str:
        return "first"

    @cache.memoize(make_name=lambda name: "same", hash_method=hashlib.md5)
    async def second(a: int) -> str:
        return "second"

    assert await first(1) == "first"
    assert await second(1) == "first"  # one name, one entry: what source_check is for
    assert first.make_cache_key(first, 1) != (  # type: ignore[attr-defined]
        cache.memoize(make_name=lambda name: "same")(first.uncached)  # type: ignore
        .make_cache_key(first, 1))

    @cache.memoize(make_name=lambda name: "checked", source_check=True)
    async def third(a: int) -> str:
        return "third"

    @cache.memoize(make_name=lambda name: "checked", source_check=True)
    async def fourth(a: int) -> str:
        return "fourth"

    assert await third(1) == "third"
    assert await fourth(1) == "fourth"


async def test_cache_source_check_setting_is_the_default(
    cache_config: dict[str, Any]
) -> None:
    app = Quart(__name__)
    checked = Cache(app, config={**cache_config, "CACHE_SOURCE_CHECK": True})

    @checked.memoize(make_name=lambda name: "by-setting")
    async def one() -> str:
        return "one"

    @checked.memoize(make_name=lambda name: "by-setting")
    async def two() -> str:
        return "two"

    async with app.test_app(), app.app_context():
        assert (await one(), await two()) == ("one", "two")


async def test_cache_hash_method_setting_is_the_default(cache_config: dict[str, Any]) -> None:
    """Flask-Caching's test_hash_method.py: the setting, overridden by the argument."""
    keys: dict[str, set[str]] = {}
    for label, setting in (("default", None), ("md5", hashlib.md5), ("path", "hashlib.md5")):
        app = Quart(__name__)
        prefix = f"{cache_config['CACHE_KEY_PREFIX']}{label}:"
        cache = Cache(app, config={**cache_config, "CACHE_HASH_METHOD": setting,
                                   "CACHE_KEY_PREFIX": prefix})

        @cache.memoize()
        async def add(a: int) -> int:
            return a

        @cache.memoize(hash_method=hashlib.sha1)
        async def add_sha1(a: int) -> int:
            return a

        @app.get("/view")
        @cache.cached()
        async def view() -> str:
            return "view"

        async with app.test_app(), app.app_context():
            assert await add(1) == 1
            assert await cache.has(add.make_cache_key(add.uncached, 1))  # type: ignore
            keys[label] = {add.make_cache_key(add.uncached, 1),  # type: ignore[attr-defined]
                           view.make_cache_key(path="/view"),  # type: ignore[attr-defined]
                           add_sha1.make_cache_key(add_sha1.uncached, 1)}  # type: ignore
            assert (await app.test_client().get("/view")).headers["Cache-Status"].endswith(
                "stored")
            assert await cache.has(view.make_cache_key(path="/view"))  # type: ignore
    assert keys["md5"] == keys["path"]
    assert len(keys["md5"] & keys["default"]) == 1  # only the sha1 one is the same


class Adder:
    """Flask-Caching's test class; here it says what identifies an instance."""

    def __init__(self, initial: int) -> None:
        self.initial = initial

    def __caching_id__(self) -> int:
        return self.initial

    def add(self, b: int) -> int:
        return self.initial + b + fresh()


async def test_memoize_methods_per_instance_and_delete_memoized_binds_the_instance(
    cache: Cache, serving: Quart
) -> None:
    class Memo(Adder):
        @cache.memoize(60)
        async def add(self, b: int) -> int:  # type: ignore[override]
            return super().add(b)

    one, two = Memo(1), Memo(2)

    async def results() -> tuple[int, ...]:
        return (await one.add(3), await one.add(4), await two.add(3))

    start = await results()
    assert await results() == start
    await cache.delete_memoized(one.add, 3)  # the bound method supplies `one`
    after_call = await results()
    assert after_call[0] != start[0] and after_call[1:] == start[1:]
    await cache.delete_memoized(one.add)  # only one's entries
    after_instance = await results()
    assert after_instance[:2] != after_call[:2] and after_instance[2] == start[2]
    await cache.delete_memoized(Memo.add, two, 3)  # through the class: instance first
    assert (await results())[2] != start[2]
    with pytest.raises(ValueError, match="pass the `self` argument first"):
        await cache.delete_memoized(Memo.add, b=3)
    before = await results()
    await cache.delete_memoized(Memo.add)  # through the class, no arguments: every instance
    assert all(now != then for now, then in zip(await results(), before, strict=True))


async def test_caching_id_identifies_an_instance_whatever_its_repr(
    cache: Cache, serving: Quart
) -> None:
    class Repr42(Adder):
        def __repr__(self) -> str:
            return "42"

        @cache.memoize()
        async def add(self, b: int) -> int:  # type: ignore[override]
            return super().add(b)

    one, two = Repr42(1), Repr42(2)
    value = await one.add(3)
    assert await one.add(3) == value
    assert await one.add(4) != value
    assert await two.add(3) != value


async def test_memoize_ignoring_self_shares_entries_between_instances(
    cache: Cache, serving: Quart
) -> None:
    class Shared:
        @cache.memoize(5, args_to_ignore=["self"])
        async def add(self, b: int) -> int:
            return b + fresh()

    one, two = Shared(), Shared()  # no __caching_id__ needed: self is not in the key
    value = await one.add(3)
    assert await two.add(3) == value
    await cache.delete_memoized(two.add, 3)
    assert await one.add(3) != value


async def test_memoize_classmethod_delete(cache: Cache, serving: Quart) -> None:
    class Mock:
        @classmethod
        @cache.memoize(5)
        async def big_foo(cls, a: int, b: int) -> int:
            return a + b + fresh()

    first, second = await Mock.big_foo(5, 2), await Mock.big_foo(5, 3)
    assert await Mock.big_foo(5, 2) == first
    with pytest.raises(ValueError, match="pass the `cls` argument first"):
        await cache.delete_memoized(Mock.big_foo, 5, 2)
    await cache.delete_memoized(Mock.big_foo, Mock, 5, 2)
    assert await Mock.big_foo(5, 2) != first
    assert await Mock.big_foo(5, 3) == second
    await cache.delete_memoized(Mock.big_foo)
    assert await Mock.big_foo(5, 3) != second


async def test_delete_memoized_verhash_forgets_every_entry(cache: Cache, serving: Quart) -> None:
    @cache.memoize(5)
    async def big_foo(a: int, b: int) -> int:
        return a + b + fresh()

    first, second = await big_foo(5, 2), await big_foo(5, 3)
    await cache.delete_memoized_verhash(big_foo)
    assert await big_foo(5, 2) != first
    assert await big_foo(5, 3) != second


async def test_an_object_without_identity_is_refused_with_what_to_write(
    cache: Cache, serving: Quart
) -> None:
    class Anonymous:
        @cache.memoize()
        async def value(self) -> int:
            return 1

    with pytest.raises(TypeError, match=r"def __caching_id__\(self\): return self.id.*"
                                        r"or name 'self' in args_to_ignore"):
        await Anonymous().value()
