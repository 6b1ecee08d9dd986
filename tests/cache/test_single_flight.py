"""SingleFlight in one process, and the lease that coordinates processes sharing Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from quart_app.cache import CacheClient
from quart_app.cache.single_flight import LeasePolicy, SingleFlight, run_leased

from .conftest import settings_from


async def test_concurrent_callers_share_one_computation() -> None:
    flights = SingleFlight()
    runs = 0

    async def compute() -> list[int]:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.05)
        return [runs]

    results = await asyncio.gather(*(flights.run("k", compute) for _ in range(50)))
    assert runs == 1
    assert [computed for _, computed in results].count(True) == 1
    assert all(value == [1] for value, _ in results)
    assert len(flights) == 0
    assert await flights.run("k", compute) == ([2], True)  # nothing is kept afterwards


async def test_other_keys_do_not_wait() -> None:
    flights = SingleFlight()
    gate = asyncio.Event()

    async def blocked() -> str:
        await gate.wait()
        return "a"

    async def quick() -> str:
        return "b"

    waiting = asyncio.ensure_future(flights.run("a", blocked))
    await asyncio.sleep(0)
    assert await flights.run("b", quick) == ("b", True)
    gate.set()
    assert await waiting == ("a", True)


async def test_an_exception_reaches_every_waiting_caller_and_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flights = SingleFlight()

    async def fail() -> None:
        await asyncio.sleep(0.02)
        raise ValueError("nope")

    results = await asyncio.gather(*(flights.run("k", fail) for _ in range(5)),
                                   return_exceptions=True)
    assert all(isinstance(result, ValueError) for result in results)
    with pytest.raises(ValueError):
        await flights.run("k", fail)  # alone: nobody waits, nothing left unretrieved
    assert "never retrieved" not in caplog.text


async def test_a_cancelled_computing_caller_hands_over_to_a_waiting_one() -> None:
    flights = SingleFlight()
    started = asyncio.Event()
    runs = 0

    async def compute() -> int:
        nonlocal runs
        runs += 1
        started.set()
        await asyncio.sleep(0.05)
        return runs

    first = asyncio.ensure_future(flights.run("k", compute))
    await started.wait()
    second = asyncio.ensure_future(flights.run("k", compute))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == (2, True)  # it took over and computed
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_cancelled_waiting_caller_does_not_disturb_the_computation() -> None:
    flights = SingleFlight()

    async def compute() -> str:
        await asyncio.sleep(0.05)
        return "done"

    first = asyncio.ensure_future(flights.run("k", compute))
    await asyncio.sleep(0)
    waiting = asyncio.ensure_future(flights.run("k", compute))
    await asyncio.sleep(0)
    waiting.cancel()
    assert await first == ("done", True)


# --- the lease --------------------------------------------------------------------------------


@pytest.fixture
async def redis_clients(redis_cache_config: dict[str, Any]) -> Any:
    """Two clients on one Redis prefix: two processes, as far as a lease can tell."""
    first = CacheClient(settings_from(redis_cache_config))
    second = CacheClient(settings_from(redis_cache_config))
    yield first, second
    await first.close()
    await second.close()


def looking_at(client: CacheClient, key: str) -> Callable[[], Awaitable[str | None]]:
    async def look() -> str | None:
        found = await client.get(key)
        return found if isinstance(found, str) else None

    return look


async def test_a_process_that_finds_the_lease_taken_gets_the_holders_result(
    redis_clients: tuple[CacheClient, CacheClient],
) -> None:
    first, second = redis_clients
    entered = asyncio.Event()
    release = asyncio.Event()
    policy = LeasePolicy(seconds=5, poll_interval=0.01)

    async def holder_computes() -> str:
        entered.set()
        await release.wait()
        await first.set("entry", "from the holder")
        return "from the holder"

    async def must_not_run() -> str:
        raise AssertionError("the waiting process computed too")

    holder = asyncio.ensure_future(
        run_leased(first, "lease", policy, holder_computes, looking_at(first, "entry")))
    await entered.wait()
    waiter = asyncio.ensure_future(
        run_leased(second, "lease", policy, must_not_run, looking_at(second, "entry")))
    await asyncio.sleep(0.05)
    release.set()
    assert await holder == ("from the holder", True)
    assert await waiter == ("from the holder", False)
    assert not await first.has("lease")  # released


async def test_waiters_compute_themselves_when_the_holder_stores_nothing(
    redis_clients: tuple[CacheClient, CacheClient],
) -> None:
    first, second = redis_clients
    entered = asyncio.Event()
    release = asyncio.Event()
    policy = LeasePolicy(seconds=5, poll_interval=0.01)

    async def uncacheable() -> str:
        entered.set()
        await release.wait()
        return "not stored"

    async def own() -> str:
        return "computed by the waiter"

    holder = asyncio.ensure_future(
        run_leased(first, "lease", policy, uncacheable, looking_at(first, "entry")))
    await entered.wait()
    waiter = asyncio.ensure_future(
        run_leased(second, "lease", policy, own, looking_at(second, "entry")))
    await asyncio.sleep(0.05)
    assert not waiter.done()  # it waits while the lease is held ...
    release.set()
    assert await waiter == ("computed by the waiter", True)  # ... then runs its own
    assert await holder == ("not stored", True)


async def test_waiters_stop_waiting_when_the_lease_runs_out(
    redis_clients: tuple[CacheClient, CacheClient],
) -> None:
    first, second = redis_clients
    release = asyncio.Event()
    entered = asyncio.Event()
    policy = LeasePolicy(seconds=0.2, poll_interval=0.01)

    async def stuck() -> str:
        entered.set()
        await release.wait()
        return "late"

    async def own() -> str:
        return "did not wait forever"

    holder = asyncio.ensure_future(
        run_leased(first, "lease", policy, stuck, looking_at(first, "entry")))
    await entered.wait()
    assert await run_leased(second, "lease", policy, own, looking_at(second, "entry")) == (
        "did not wait forever", True)
    await second.add("lease", "another owner", timeout=5)  # taken over by someone else
    release.set()
    await holder
    assert await first.get("lease") == "another owner"  # the late holder left it alone


async def test_a_memory_cache_lease_is_released_only_by_its_owner() -> None:
    client = CacheClient(settings_from({"CACHE_TYPE": "SimpleCache", "CACHE_KEY_PREFIX": "m:"}))
    assert await client.add("lease", "me", timeout=5)
    assert not await client.delete_if_equal("lease", "someone else")
    assert await client.delete_if_equal("lease", "me")
    assert not await client.has("lease")
