"""SingleFlight in one process, and the lease that coordinates processes sharing Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from quart_app.cache import CacheClient
from quart_app.cache.single_flight import LeasePolicy, SingleFlight, run_leased

from ..support import settings_from


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
async def redis_clients(shared_cache_config: dict[str, Any]) -> Any:
    """Two clients on one shared prefix (Redis, memcached): two processes, as far as a lease
    can tell."""
    first = CacheClient(settings_from(shared_cache_config))
    second = CacheClient(settings_from(shared_cache_config))
    for client in (first, second):  # a cluster client learns the slot map at its first call
        await client.has("warm-up")
    yield first, second
    await first.close()
    await second.close()


def looking_at(client: CacheClient, key: str) -> Callable[[], Awaitable[str | None]]:
    async def look() -> str | None:
        found = await client.get(key)
        return found if isinstance(found, str) else None

    return look


class Holder:
    """The process that takes the lease first and computes until released."""

    def __init__(self, client: CacheClient, policy: LeasePolicy, stores: bool) -> None:
        self.client = client
        self.policy = policy
        self.stores = stores
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.task: asyncio.Future[tuple[str, bool]] | None = None

    async def start(self) -> None:
        self.task = asyncio.ensure_future(lease(self.client, self.policy, self._compute))
        await self.entered.wait()

    async def finish(self) -> tuple[str, bool]:
        self.release.set()
        assert self.task is not None
        return await self.task

    async def _compute(self) -> str:
        self.entered.set()
        await self.release.wait()
        if self.stores:
            await self.client.set("entry", "from the holder")
            return "from the holder"
        return "not stored"


def lease(
    client: CacheClient, policy: LeasePolicy, compute: Callable[[], Awaitable[str]]
) -> Awaitable[tuple[str, bool]]:
    return run_leased(client, "lease", policy, compute, looking_at(client, "entry"))


async def computed_by_the_waiter() -> str:
    return "computed by the waiter"


async def must_not_run() -> str:
    raise AssertionError("a second process computed what the lease holder stores")


async def test_a_process_that_finds_the_lease_taken_gets_the_holders_result(
    redis_clients: tuple[CacheClient, CacheClient],
) -> None:
    first, second = redis_clients
    policy = LeasePolicy(seconds=5, poll_interval=0.01)
    holder = Holder(first, policy, stores=True)
    await holder.start()

    waiter = asyncio.ensure_future(lease(second, policy, must_not_run))
    await asyncio.sleep(0.05)
    assert await holder.finish() == ("from the holder", True)
    assert await waiter == ("from the holder", False)
    assert not await first.has("lease")  # released


async def test_a_process_that_takes_a_freed_lease_uses_the_entry_its_holder_stored(
    redis_clients: tuple[CacheClient, CacheClient],
) -> None:
    # The second process missed the entry just before the holder stored it and let the
    # lease go: taking the lease then must not run the computation a second time.
    first, second = redis_clients
    policy = LeasePolicy(seconds=5, poll_interval=0.01)
    holder = Holder(first, policy, stores=True)
    await holder.start()
    assert await holder.finish() == ("from the holder", True)

    assert await lease(second, policy, must_not_run) == ("from the holder", False)
    assert not await second.has("lease")  # and it let the lease go


async def test_waiters_compute_themselves_when_the_holder_stores_nothing(
    redis_clients: tuple[CacheClient, CacheClient],
) -> None:
    first, second = redis_clients
    policy = LeasePolicy(seconds=5, poll_interval=0.01)
    holder = Holder(first, policy, stores=False)
    await holder.start()
    waiter = asyncio.ensure_future(lease(second, policy, computed_by_the_waiter))
    await asyncio.sleep(0.05)
    assert not waiter.done()  # it waits while the lease is held ...
    assert await holder.finish() == ("not stored", True)
    assert await waiter == ("computed by the waiter", True)  # ... then runs its own


async def test_waiters_stop_waiting_when_the_lease_runs_out(
    redis_clients: tuple[CacheClient, CacheClient],
) -> None:
    first, second = redis_clients
    policy = LeasePolicy(seconds=0.2, poll_interval=0.01)
    holder = Holder(first, policy, stores=False)
    await holder.start()
    assert await lease(second, policy, computed_by_the_waiter) == (
        "computed by the waiter", True)  # the holder is still computing
    # The waiter's wait ends with the lease, to within a millisecond of the server's clock
    # (its deadline counts from its own, later, attempt): the key can outlive it by that.
    async with asyncio.timeout(2):
        while await second.has("lease"):  # noqa: ASYNC110  (the state lives in Redis)
            await asyncio.sleep(0.005)
    assert await second.add("lease", "another owner", timeout=5)  # taken over by someone else
    await holder.finish()
    assert await first.get("lease") == "another owner"  # the late holder left it alone


async def test_a_memory_cache_lease_is_released_only_by_its_owner() -> None:
    client = CacheClient(settings_from({"CACHE_TYPE": "SimpleCache", "CACHE_KEY_PREFIX": "m:"}))
    assert await client.add("lease", "me", timeout=5)
    assert not await client.delete_if_equal("lease", "someone else")
    assert await client.delete_if_equal("lease", "me")
    assert not await client.has("lease")
