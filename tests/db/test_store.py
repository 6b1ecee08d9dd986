"""InfoStore behaviour, the same on SQLite and on MariaDB."""

from __future__ import annotations

import asyncio
import base64
from decimal import Decimal

import pytest

from quart_app.db import DuplicateId, InfoRow, InfoStore
from quart_app.db.store import MAX_ID, MAX_PAGE_SIZE

from ..support import all_rows


async def test_insert_then_get(store: InfoStore) -> None:
    row = await store.insert(5, "redis", Decimal("588"))
    assert row == InfoRow(5, "redis", Decimal("588.00"))
    assert await store.get(5) == row
    assert row.to_json() == {"id": 5, "name": "redis", "money": "588.00"}


async def test_get_missing_is_none(store: InfoStore) -> None:
    assert await store.get(1) is None
    assert await store.get(MAX_ID + 1) is None


@pytest.mark.parametrize(
    "money",
    ["0.10", "0.20", "0.30", "0.01", "0", "9999999999.99", "1234.5"],
)
async def test_money_is_exact_to_the_cent(store: InfoStore, money: str) -> None:
    row = await store.insert(None, "m", Decimal(money))
    stored = await store.get(row.id)
    assert stored is not None
    assert stored.money == Decimal(money)
    assert stored.money.as_tuple().exponent == -2
    assert stored.to_json()["money"] == f"{Decimal(money):.2f}"


async def test_money_adds_up_without_float_error(store: InfoStore) -> None:
    a = await store.insert(None, "a", Decimal("0.10"))
    b = await store.insert(None, "b", Decimal("0.20"))
    got_a, got_b = await store.get(a.id), await store.get(b.id)
    assert got_a is not None and got_b is not None
    assert got_a.money + got_b.money == Decimal("0.30")


async def test_names_keep_every_character(store: InfoStore) -> None:
    names = ["é", "名字", "🐍" * 64, " padded ", ""]
    for id, name in enumerate(names, start=1):
        await store.insert(id, name, Decimal("1"))
    for id, name in enumerate(names, start=1):
        row = await store.get(id)
        assert row is not None and row.name == name


async def test_duplicate_id_changes_nothing(store: InfoStore) -> None:
    await store.insert(7, "first", Decimal("1.00"))
    with pytest.raises(DuplicateId) as caught:
        await store.insert(7, "second", Decimal("2.00"))
    assert caught.value.id == 7
    assert await all_rows(store) == [InfoRow(7, "first", Decimal("1.00"))]
    # The store still works after the failure.
    assert (await store.insert(8, "third", Decimal("3"))).id == 8


async def test_missing_id_gets_the_next_one(store: InfoStore) -> None:
    assert (await store.insert(None, "a", Decimal("1"))).id == 1
    await store.insert(10, "b", Decimal("1"))
    assert (await store.insert(None, "c", Decimal("1"))).id == 11
    await store.insert(5, "d", Decimal("1"))
    assert (await store.insert(None, "e", Decimal("1"))).id == 12


@pytest.mark.parametrize(
    ("id", "name", "money", "error"),
    [
        (0, "x", Decimal("1"), ValueError),
        (MAX_ID + 1, "x", Decimal("1"), ValueError),
        (True, "x", Decimal("1"), TypeError),
        (1, "x" * 65, Decimal("1"), ValueError),
        (1, "\ud800", Decimal("1"), ValueError),
        (1, "x", Decimal("1.005"), ValueError),
        (1, "x", Decimal("10000000000"), ValueError),
        (1, "x", Decimal("-0.01"), ValueError),
        (1, "x", Decimal("-9999999999.99"), ValueError),
        (1, "x", Decimal("NaN"), ValueError),
        (1, "x", Decimal("Infinity"), ValueError),
        (1, "x", 0.1, TypeError),
    ],
)
async def test_rows_the_table_cannot_hold_are_refused(
    store: InfoStore, id: int, name: str, money: Decimal, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await store.insert(id, name, money)
    assert await all_rows(store) == []


async def test_pages_are_newest_inserted_first(store: InfoStore) -> None:
    ids = [50, 3, 900, 1, 77, 2]  # insertion order, deliberately not id order
    for id in ids:
        await store.insert(id, f"n{id}", Decimal("1"))
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        rows, cursor = await store.list_page(4, cursor)
        seen += [row.id for row in rows]
        pages += 1
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert pages == 2


async def test_exact_multiple_of_the_page_size_ends_with_no_cursor(store: InfoStore) -> None:
    for id in (1, 2):
        await store.insert(id, "x", Decimal("1"))
    rows, cursor = await store.list_page(2, None)
    assert [row.id for row in rows] == [2, 1]
    assert cursor is None
    assert await store.list_page(5, None) == (rows, None)


async def test_a_page_ignores_rows_inserted_after_its_cursor(store: InfoStore) -> None:
    for id in (1, 2, 3):
        await store.insert(id, "x", Decimal("1"))
    first, cursor = await store.list_page(2, None)
    await store.insert(4, "later", Decimal("1"))
    second, end = await store.list_page(2, cursor)
    assert [row.id for row in first + second] == [3, 2, 1]
    assert end is None


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor",
        "%%%",
        "czA",  # "s0"
        "cy0x",  # "s-1"
        base64.urlsafe_b64encode(b"x12").decode(),
        base64.urlsafe_b64encode("s\u0661\u0662".encode()).decode(),  # Arabic-Indic digits
        "czE=",  # padded form of a valid cursor
        "é",
    ],
)
async def test_bad_cursor_is_a_value_error(store: InfoStore, cursor: str) -> None:
    with pytest.raises(ValueError):
        await store.list_page(10, cursor)


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE_SIZE + 1])
async def test_bad_limit_is_a_value_error(store: InfoStore, limit: int) -> None:
    with pytest.raises(ValueError):
        await store.list_page(limit, None)


async def test_fifty_concurrent_inserts_without_id(store: InfoStore) -> None:
    rows = await asyncio.gather(*(store.insert(None, f"n{i}", Decimal("0.01")) for i in range(50)))
    assert sorted(row.id for row in rows) == list(range(1, 51))
    stored = await all_rows(store)
    assert sorted(row.id for row in stored) == list(range(1, 51))
    assert {row.name for row in stored} == {f"n{i}" for i in range(50)}


async def test_concurrent_mixed_ids_lose_nothing(store: InfoStore) -> None:
    # Assigned ids come after the largest id ever stored, so given ids below 2000 cannot
    # collide with them; a given id above the counter could, legitimately.
    await store.insert(2000, "counter", Decimal("1"))
    given = [store.insert(1000 + i, f"given{i}", Decimal("1")) for i in range(25)]
    assigned = [store.insert(None, f"auto{i}", Decimal("1")) for i in range(25)]
    mixed = [coro for pair in zip(given, assigned, strict=True) for coro in pair]
    rows = await asyncio.gather(*mixed)
    ids = [row.id for row in rows]
    assert len(set(ids)) == 50
    assert all(row.id > 2000 for row in rows if row.name.startswith("auto"))
    stored = await all_rows(store)
    assert sorted(row.id for row in stored) == sorted([2000, *ids])


async def test_concurrent_duplicates_store_exactly_one(store: InfoStore) -> None:
    results = await asyncio.gather(
        *(store.insert(42, f"try{i}", Decimal("1")) for i in range(20)), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, InfoRow)]
    assert len(winners) == 1
    assert all(isinstance(r, DuplicateId) for r in results if r not in winners)
    assert await all_rows(store) == winners


async def test_ping_and_stats(store: InfoStore) -> None:
    await store.ping()
    stats = store.stats()
    for key in ("size", "in_use", "idle", "waiting", "timeouts", "maxconnections"):
        assert isinstance(stats[key], int)
    assert stats["in_use"] == 0
    assert "://" in store.display_url
