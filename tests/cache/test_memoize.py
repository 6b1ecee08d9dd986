"""`cache.memoize` and `delete_memoized` on the memory backend and on the real Redis."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from quart import Quart

from quart_app import create_app
from quart_app.cache.keys import argument_text
from quart_app.extensions import cache

calls: Counter[str] = Counter()
values: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def fresh_counts() -> None:
    calls.clear()
    values.clear()


@pytest.fixture
async def app(app_config: dict[str, Any]) -> AsyncIterator[Quart]:
    app = create_app(app_config)
    async with app.test_app(), app.app_context():
        yield app


@cache.memoize(60)
async def add(a: int, b: int = 10) -> int:
    calls["add"] += 1
    return a + b


@cache.memoize(60, cache_none=True)
async def value_of(name: str) -> Any:
    calls[name] += 1
    return values[name]


@cache.memoize()
def sync_square(number: int) -> int:
    calls["sync"] += 1
    return number * number


@cache.memoize(60, make_name=lambda name: "shared-name")
async def named_one(x: int) -> str:
    calls["named"] += 1
    return f"one {x}"


@cache.memoize(60, make_name=lambda name: "shared-name")
async def named_two(x: int) -> str:
    calls["named"] += 1
    return f"two {x}"


@cache.memoize(60, unless=lambda: values.get("skip", False))
async def skippable() -> int:
    calls["skippable"] += 1
    return calls["skippable"]


@cache.memoize(60, unless=lambda function, x: x < 0)
async def skip_negative(x: int) -> int:
    calls["skip_negative"] += 1
    return x


class Connection:
    """Stands for a database connection: not part of what the result depends on."""


@cache.memoize(60, args_to_ignore=["connection"])
async def row(connection: Connection, row_id: int) -> dict[str, int]:
    calls["row"] += 1
    return {"id": row_id}


@cache.memoize(0.3)
async def short_lived() -> int:
    calls["short"] += 1
    return calls["short"]


@cache.memoize(60)
async def slow(key: str, gate: asyncio.Event | None = None) -> int:
    calls["slow"] += 1
    await asyncio.sleep(0.1)
    return calls["slow"]


@cache.memoize(60)
async def with_varargs(*numbers: int, **options: str) -> list[Any]:
    calls["varargs"] += 1
    return [list(numbers), sorted(options.items())]


@cache.memoize(60)
async def failing() -> None:
    calls["failing"] += 1
    await asyncio.sleep(0.05)
    raise ValueError("failed")


class Point:
    def __init__(self, x: int) -> None:
        self.x = x

    def __repr__(self) -> str:
        return f"Point({self.x})"


@cache.memoize(60)
async def norm(point: Point) -> int:
    calls["norm"] += 1
    return abs(point.x)


async def test_second_call_is_a_hit(app: Quart) -> None:
    assert await add(1, 2) == 3
    assert await add(1, 2) == 3
    assert calls["add"] == 1


async def test_arguments_bound_by_position_name_or_default_share_an_entry(app: Quart) -> None:
    assert await add(1) == 11
    assert await add(1, 10) == 11
    assert await add(a=1) == 11
    assert await add(b=10, a=1) == 11
    assert calls["add"] == 1
    assert await add(1, 11) == 12
    assert calls["add"] == 2


@pytest.mark.parametrize(("one", "other"), [
    (("1",), (1,)), ((1,), (True,)), ((1.0,), (1,)), (("a b",), ("a", "b")),
])
async def test_arguments_that_only_look_alike_do_not_collide(
    app: Quart, one: tuple[Any, ...], other: tuple[Any, ...]
) -> None:
    first = await with_varargs(*one)
    second = await with_varargs(*other)
    assert calls["varargs"] == 2  # two entries, each the right one
    assert [type(item) for item in second[0]] == [type(item) for item in other]
    assert first[0] == list(one) and second[0] == list(other)


async def test_varargs_and_keyword_arguments(app: Quart) -> None:
    expected = [[1, 2], [("flag", "y"), ("mode", "x")]]  # tuples survive the cache
    assert await with_varargs(1, 2, mode="x", flag="y") == expected
    assert await with_varargs(1, 2, flag="y", mode="x") == expected
    assert calls["varargs"] == 1


@pytest.mark.parametrize("value", [None, "", [], {}, 0, False, "é中文 ✓", "x" * 1_000_000,
                                   b"\x00\xff", ("a", 1)],
                         ids=lambda value: type(value).__name__ + str(len(str(value))))
async def test_falsy_unicode_and_large_values_are_cached(app: Quart, value: Any) -> None:
    values["v"] = value
    assert await value_of("v") == value
    assert await value_of("v") == value
    assert type(await value_of("v")) is type(value)
    assert calls["v"] == 1


async def test_results_come_back_by_value_and_the_same_on_miss_and_hit(app: Quart) -> None:
    values["v"] = {1: ["a"]}  # JSON turns int keys into strings: on a miss too
    first = await value_of("v")
    assert first == {"1": ["a"]}
    first["1"].append("mutated")
    assert await value_of("v") == {"1": ["a"]}


async def test_unserialisable_results_raise_type_error(app: Quart) -> None:
    values["v"] = object()
    with pytest.raises(TypeError, match="cannot cache"):
        await value_of("v")


async def test_sync_functions_are_memoized_and_become_awaitable(app: Quart) -> None:
    assert await sync_square(4) == 16
    assert await sync_square(4) == 16
    assert calls["sync"] == 1


async def test_make_name_renames_the_function_in_keys(app: Quart) -> None:
    assert await named_one(1) == "one 1"
    assert await named_two(1) == "one 1"  # the same name is the same entries
    assert calls["named"] == 1
    await cache.delete_memoized(named_two)
    assert await named_one(1) == "one 1"
    assert calls["named"] == 2


async def test_unless_bypasses_the_cache(app: Quart) -> None:
    await skippable()
    values["skip"] = True
    assert await skippable() == 2
    assert await skippable() == 3
    await skip_negative(-1)
    await skip_negative(-1)
    await skip_negative(1)
    await skip_negative(1)
    assert calls["skip_negative"] == 3
    name = "tests.cache.test_memoize.skippable"
    assert cache.view_stats()[name] == {"hit": 0, "miss": 1, "stale": 0, "error": 0, "bypass": 2}


async def test_args_to_ignore_leaves_an_argument_out_of_the_key(app: Quart) -> None:
    assert await row(Connection(), 5) == {"id": 5}
    assert await row(Connection(), 5) == {"id": 5}
    assert calls["row"] == 1
    await cache.delete_memoized(row, Connection(), 5)
    await row(Connection(), 5)
    assert calls["row"] == 2


async def test_args_to_ignore_must_name_arguments() -> None:
    async def lookup(connection: Connection, row_id: int) -> int:
        return row_id

    with pytest.raises(TypeError, match="names no argument"):
        cache.memoize(args_to_ignore=["conection"])(lookup)


async def test_objects_with_their_own_repr_are_keys_others_are_refused(app: Quart) -> None:
    assert await norm(Point(-3)) == 3
    assert await norm(Point(-3)) == 3
    assert calls["norm"] == 1

    @cache.memoize(60)
    async def uses(connection: Connection) -> int:
        return 1

    with pytest.raises(TypeError, match=r"no __repr__ that identifies it.*args_to_ignore"):
        await uses(Connection())  # its default repr holds an address a later object can reuse
    assert argument_text("point", Point(2)) == "tests.cache.test_memoize.Point:Point(2)"


async def test_timeout_expires_the_entry(app: Quart) -> None:
    assert await short_lived() == 1
    assert await short_lived() == 1
    await asyncio.sleep(0.4)
    assert await short_lived() == 2


async def test_delete_memoized_one_call_or_all(app: Quart) -> None:
    await add(1, 1)
    await add(2, 2)
    await cache.delete_memoized(add, 1, 1)
    await add(1, 1)
    await add(2, 2)
    assert calls["add"] == 3
    await cache.delete_memoized(add, b=2, a=2)  # bound like a call
    await add(2, 2)
    assert calls["add"] == 4
    await cache.delete_memoized(add)
    await add(1, 1)
    await add(2, 2)
    assert calls["add"] == 6


async def test_delete_memoized_refuses_a_function_that_is_not_memoized(app: Quart) -> None:
    async def plain() -> None:
        return None

    with pytest.raises(TypeError, match=r"not decorated with cache\.memoize"):
        await cache.delete_memoized(plain)


async def test_a_value_computed_before_delete_memoized_is_never_served_after_it(
    app: Quart,
) -> None:
    values["v"] = "old"
    started = asyncio.Event()

    @cache.memoize(60)
    async def reader() -> str:
        value = values["v"]
        started.set()
        await asyncio.sleep(0.05)
        return str(value)

    slow_read = asyncio.ensure_future(reader())
    await started.wait()
    values["v"] = "new"
    await cache.delete_memoized(reader)
    assert await slow_read == "old"
    assert await reader() == "new"


async def test_concurrent_calls_run_the_function_once(app: Quart) -> None:
    results = await asyncio.gather(*(slow("k") for _ in range(100)))
    assert results == [1] * 100
    assert calls["slow"] == 1
    stats = cache.view_stats()["tests.cache.test_memoize.slow"]
    assert stats["miss"] == 100


async def test_a_failure_reaches_every_waiting_caller_and_is_not_cached(app: Quart) -> None:
    results = await asyncio.gather(*(failing() for _ in range(10)), return_exceptions=True)
    assert all(isinstance(result, ValueError) for result in results)
    assert calls["failing"] == 1
    with pytest.raises(ValueError):
        await failing()
    assert calls["failing"] == 2


async def test_memoize_needs_a_serving_app() -> None:
    with pytest.raises(RuntimeError):
        await add(1, 2)
