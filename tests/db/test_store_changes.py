"""InfoStore updates, deletes and bulk inserts, the same on SQLite and on MariaDB."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from quart_app.db import DuplicateId, InfoRow, InfoStore, StoreError
from quart_app.db.errors import RowChanged
from quart_app.db.store import BULK_CHUNK, MAX_ID

from ..support import all_rows


async def test_update_replaces_the_row_and_gives_the_previous(store: InfoStore) -> None:
    before = await store.insert(5, "redis", Decimal("588"))
    change = await store.update(5, "mysql", Decimal("1.5"))
    assert change == (before, InfoRow(5, "mysql", Decimal("1.50")))
    assert await store.get(5) == InfoRow(5, "mysql", Decimal("1.50"))


async def test_partial_update_keeps_the_other_field(store: InfoStore) -> None:
    await store.insert(5, "redis", Decimal("588"))
    assert await store.update(5, name="renamed") == (
        InfoRow(5, "redis", Decimal("588")), InfoRow(5, "renamed", Decimal("588")))
    assert await store.update(5, money=Decimal("2")) == (
        InfoRow(5, "renamed", Decimal("588")), InfoRow(5, "renamed", Decimal("2")))
    assert await store.get(5) == InfoRow(5, "renamed", Decimal("2.00"))


async def test_update_to_the_same_values_is_a_success(store: InfoStore) -> None:
    row = await store.insert(5, "same", Decimal("1"))
    assert await store.update(5, "same", Decimal("1.00")) == (row, row)
    assert await store.update(5, "same", Decimal("1"), expected=row) == (row, row)


async def test_update_or_delete_of_a_missing_row_is_none(store: InfoStore) -> None:
    assert await store.update(1, "x", Decimal("1")) is None
    assert await store.update(MAX_ID + 1, "x", Decimal("1")) is None
    assert await store.delete(1) is None
    assert await store.delete(0) is None
    assert await all_rows(store) == []


async def test_update_refuses_what_the_table_cannot_hold(store: InfoStore) -> None:
    await store.insert(5, "a", Decimal("1"))
    with pytest.raises(ValueError):
        await store.update(5, money=Decimal("1.234"))
    with pytest.raises(ValueError):
        await store.update(5, name="x" * 65)
    with pytest.raises(ValueError):
        await store.update(5, money=Decimal("-0.01"))
    assert await store.get(5) == InfoRow(5, "a", Decimal("1"))


async def test_update_keeps_the_row_in_its_place_in_the_list(store: InfoStore) -> None:
    for id in (1, 2, 3):
        await store.insert(id, f"n{id}", Decimal("1"))
    await store.update(2, "changed", Decimal("9"))
    assert [row.id for row in await all_rows(store)] == [3, 2, 1]


async def test_update_with_expected_is_compare_and_set(store: InfoStore) -> None:
    read = await store.insert(5, "Redis", Decimal("1"))
    await store.update(5, name="redis")  # differs only in case: another row for the check
    with pytest.raises(RowChanged):
        await store.update(5, money=Decimal("2"), expected=read)
    assert await store.get(5) == InfoRow(5, "redis", Decimal("1"))
    current = await store.get(5)
    assert await store.update(5, money=Decimal("2"), expected=current) is not None


async def test_update_with_expected_of_a_deleted_row_is_none(store: InfoStore) -> None:
    read = await store.insert(5, "a", Decimal("1"))
    assert await store.delete(5) == read
    assert await store.update(5, "b", Decimal("2"), expected=read) is None


async def test_concurrent_updates_from_one_read_leave_exactly_one_winner(
    store: InfoStore,
) -> None:
    read = await store.insert(5, "start", Decimal("0"))

    async def attempt(n: int) -> str:
        try:
            await store.update(5, f"writer {n}", Decimal(n), expected=read)
        except RowChanged:
            return "lost"
        return f"writer {n}"

    outcomes = await asyncio.gather(*(attempt(n) for n in range(1, 11)))
    winners = [outcome for outcome in outcomes if outcome != "lost"]
    assert len(winners) == 1
    stored = await store.get(5)
    assert stored is not None and stored.name == winners[0]


async def test_concurrent_updates_without_expected_each_see_the_one_before(
    store: InfoStore,
) -> None:
    await store.insert(5, "start", Decimal("0"))
    changes = await asyncio.gather(
        *(store.update(5, f"writer {n}", Decimal(n)) for n in range(1, 11)))
    assert all(change is not None for change in changes)
    # Every write replaced exactly one earlier state: the previous rows form one chain.
    previous_names = sorted(change[0].name for change in changes if change is not None)
    new_names = sorted(change[1].name for change in changes if change is not None)
    stored = await store.get(5)
    assert stored is not None
    assert sorted([*new_names, "start"]) == sorted([*previous_names, stored.name])


async def test_delete_removes_the_row_and_gives_it_back(store: InfoStore) -> None:
    row = await store.insert(5, "gone", Decimal("3"))
    await store.insert(6, "stays", Decimal("4"))
    assert await store.delete(5) == row
    assert await store.get(5) is None
    assert [kept.id for kept in await all_rows(store)] == [6]
    assert await store.delete(5) is None


async def test_delete_with_expected_is_compare_and_set(store: InfoStore) -> None:
    read = await store.insert(5, "a", Decimal("1"))
    await store.update(5, money=Decimal("2"))
    with pytest.raises(RowChanged):
        await store.delete(5, expected=read)
    current = await store.get(5)
    assert current is not None
    assert await store.delete(5, expected=current) == current


async def test_a_deleted_id_can_be_inserted_again(store: InfoStore) -> None:
    await store.insert(5, "a", Decimal("1"))
    await store.delete(5)
    assert await store.insert(5, "b", Decimal("2")) == InfoRow(5, "b", Decimal("2"))


async def test_insert_many_gives_each_rows_outcome_in_order(store: InfoStore) -> None:
    await store.insert(3, "existing", Decimal("1"))
    outcomes = await store.insert_many([
        (1, "one", Decimal("1")), (3, "taken", Decimal("2")), (None, "auto", Decimal("3")),
        (1, "again", Decimal("4")), (2, "two", Decimal("0.5")),
    ])
    assert outcomes[0] == InfoRow(1, "one", Decimal("1"))
    assert isinstance(outcomes[1], DuplicateId) and outcomes[1].id == 3
    auto = outcomes[2]
    assert isinstance(auto, InfoRow) and auto.name == "auto" and auto.id not in (1, 2, 3)
    assert isinstance(outcomes[3], DuplicateId) and outcomes[3].id == 1
    assert outcomes[4] == InfoRow(2, "two", Decimal("0.50"))
    # Stored in the order given, after the row that was there.
    assert [row.id for row in await all_rows(store)] == [2, auto.id, 1, 3]
    assert await store.get(3) == InfoRow(3, "existing", Decimal("1"))


async def test_insert_many_of_nothing_is_nothing(store: InfoStore) -> None:
    assert await store.insert_many([]) == []


async def test_insert_many_refuses_rows_the_table_cannot_hold(store: InfoStore) -> None:
    with pytest.raises(ValueError):
        await store.insert_many([(1, "ok", Decimal("1")), (2, "bad", Decimal("0.001"))])
    assert await all_rows(store) == []


async def test_insert_many_beyond_one_statement(store: InfoStore) -> None:
    count = BULK_CHUNK + 5
    outcomes = await store.insert_many(
        [(None, f"r{n}", Decimal(n)) for n in range(count)])
    assert all(isinstance(outcome, InfoRow) for outcome in outcomes)
    ids = [outcome.id for outcome in outcomes if isinstance(outcome, InfoRow)]
    assert len(set(ids)) == count
    page, _ = await store.list_page(3, None)
    assert [row.name for row in page] == [f"r{count - 1}", f"r{count - 2}", f"r{count - 3}"]


async def test_insert_many_outcomes_are_store_errors(store: InfoStore) -> None:
    outcomes = await store.insert_many([(7, "a", Decimal("1")), (7, "b", Decimal("1"))])
    assert isinstance(outcomes[1], StoreError)
