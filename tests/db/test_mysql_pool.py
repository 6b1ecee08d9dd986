"""MySQLPool against the real MariaDB: PooledDB's settings and the hardening on top."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pymysql
import pytest

from quart_app.db import PoolExhausted, StoreError
from quart_app.db.mysql_pool import MySQLPool
from quart_app.db.urls import parse_mysql_url

from ..support import query, server_has, wait_until_gone

MakePool = Callable[..., MySQLPool]


async def connection_id(pool: MySQLPool) -> int:
    async with pool.connection() as conn:
        ((value,),) = await query(conn.raw, "SELECT CONNECTION_ID()")
        assert value == conn.thread_id
        return int(value)


async def test_mincached_connections_open_at_start(make_pool: MakePool, admin: Any) -> None:
    pool = make_pool(mincached=3, maxcached=5)
    await pool.fill(3)
    stats = pool.stats()
    assert (stats["size"], stats["idle"], stats["in_use"], stats["created"]) == (3, 3, 0, 3)
    ids = [conn.thread_id for conn in pool._idle]
    for thread_id in ids:
        assert await server_has(admin, thread_id)


async def test_maxcached_bounds_idle_connections(make_pool: MakePool, admin: Any) -> None:
    pool = make_pool(mincached=0, maxcached=2, maxconnections=4)
    conns = [await pool.acquire() for _ in range(4)]
    assert pool.stats()["size"] == 4
    for conn in conns:
        pool.release(conn)
    stats = pool.stats()
    assert (stats["idle"], stats["size"], stats["discarded"]) == (2, 2, 2)
    for closed in conns[2:]:
        await wait_until_gone(admin, closed.thread_id)


async def test_blocking_checkout_waits_for_a_release(make_pool: MakePool) -> None:
    pool = make_pool(mincached=0, maxconnections=2, blocking=True, acquire_timeout=5)
    first, second = await pool.acquire(), await pool.acquire()
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.1)
    assert not waiter.done()
    assert pool.stats()["waiting"] == 1
    pool.release(first)
    third = await asyncio.wait_for(waiter, 1)
    assert third.thread_id == first.thread_id  # the released one, no new connection
    assert pool.stats()["size"] == 2
    pool.release(second)
    pool.release(third)
    assert pool.stats()["in_use"] == 0


async def test_waiters_are_served_in_arrival_order(make_pool: MakePool) -> None:
    pool = make_pool(mincached=0, maxconnections=1, acquire_timeout=5)
    held = await pool.acquire()
    order: list[int] = []

    async def take(n: int) -> None:
        conn = await pool.acquire()
        order.append(n)
        await asyncio.sleep(0.01)
        pool.release(conn)

    tasks = [asyncio.create_task(take(n)) for n in range(5)]
    await asyncio.sleep(0.05)
    pool.release(held)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]


async def test_non_blocking_checkout_fails_at_once(make_pool: MakePool) -> None:
    pool = make_pool(mincached=0, maxconnections=1, blocking=False)
    held = await pool.acquire()
    started = time.perf_counter()
    with pytest.raises(PoolExhausted) as caught:
        await pool.acquire()
    assert time.perf_counter() - started < 0.1
    assert caught.value.retry_after >= 1
    assert pool.stats()["rejected"] == 1
    pool.release(held)
    pool.release(await pool.acquire())


async def test_acquire_timeout_raises_pool_exhausted(make_pool: MakePool) -> None:
    pool = make_pool(mincached=0, maxconnections=1, acquire_timeout=0.3)
    held = await pool.acquire()
    started = time.perf_counter()
    with pytest.raises(PoolExhausted, match="busy"):
        await pool.acquire()
    assert 0.25 < time.perf_counter() - started < 1.0
    stats = pool.stats()
    assert (stats["timeouts"], stats["waiting"]) == (1, 0)
    pool.release(held)
    pool.release(await pool.acquire())


async def test_maxusage_replaces_a_connection_after_n_checkouts(make_pool: MakePool) -> None:
    pool = make_pool(mincached=0, maxconnections=1, maxusage=3)
    ids = [await connection_id(pool) for _ in range(7)]
    assert ids[0] == ids[1] == ids[2]
    assert ids[3] == ids[4] == ids[5] != ids[0]
    assert ids[6] != ids[3]


async def test_setsession_runs_on_every_new_connection(make_pool: MakePool) -> None:
    pool = make_pool(
        mincached=0,
        maxconnections=3,
        setsession=["SET SESSION sql_mode = 'STRICT_ALL_TABLES'", "SET @quart_app_marker = 42",
                    "SET autocommit = 0"],
    )
    conns = [await pool.acquire() for _ in range(3)]
    assert len({conn.thread_id for conn in conns}) == 3
    for conn in conns:
        rows = await query(conn.raw, "SELECT @@SESSION.sql_mode, @quart_app_marker, @@autocommit")
        # A setsession that turns autocommit off cannot break the store's discipline.
        assert rows == [("STRICT_ALL_TABLES", 42, 1)]
        pool.release(conn)


async def test_a_failing_setsession_statement_is_a_store_error(make_pool: MakePool) -> None:
    pool = make_pool(mincached=0, setsession=["SET @@no_such_variable = 1"])
    with pytest.raises(StoreError, match="setsession"):
        await pool.acquire()
    assert pool.stats()["size"] == 0


@pytest.mark.parametrize("ping", [0, 1])
async def test_a_killed_idle_connection_is_not_handed_out(
    make_pool: MakePool, admin: Any, ping: int
) -> None:
    pool = make_pool(mincached=0, maxconnections=2, ping=ping)
    victim = await connection_id(pool)
    await query(admin, "KILL %s", (victim,))
    await wait_until_gone(admin, victim)
    assert await connection_id(pool) != victim
    assert pool.stats()["in_use"] == 0


def kill_behind_the_loops_back(mysql_url: str, thread_id: int) -> None:
    """KILL a connection and wait until it is gone, without letting the event loop run."""
    address = parse_mysql_url(mysql_url)
    killer = pymysql.connect(host=address.host, port=address.port, user=address.user,
                             password=address.password, autocommit=True)
    try:
        with killer.cursor() as cur:
            cur.execute("KILL %s", (thread_id,))
            while cur.execute(
                "SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = %s", (thread_id,)
            ):
                time.sleep(0.02)
    finally:
        killer.close()
    time.sleep(0.05)  # for the FIN to cross the loopback


async def test_a_hang_up_the_event_loop_has_not_seen_is_caught(
    make_pool: MakePool, mysql_url: str
) -> None:
    pool = make_pool(mincached=0, maxconnections=2)
    victim = await connection_id(pool)
    kill_behind_the_loops_back(mysql_url, victim)
    assert not pool._idle[0].raw._reader.at_eof()
    async with pool.connection() as conn:
        assert conn.thread_id != victim
        assert not conn.reused
    assert pool.stats()["discarded"] == 1


async def test_ping_checks_a_connection_before_handing_it_out(
    make_pool: MakePool, admin: Any
) -> None:
    pool = make_pool(mincached=0, maxconnections=1, ping=1)
    await connection_id(pool)
    idle = pool._idle[0]
    await query(admin, "KILL %s", (idle.thread_id,))
    await wait_until_gone(admin, idle.thread_id)
    async with pool.connection() as conn:
        assert conn.thread_id != idle.thread_id
        assert await query(conn.raw, "SELECT 1") == [(1,)]


async def test_recycle_replaces_connections_by_age(make_pool: MakePool) -> None:
    pool = make_pool(mincached=0, maxconnections=1, recycle=0.3)
    first = await connection_id(pool)
    assert await connection_id(pool) == first  # young: reused
    await asyncio.sleep(0.35)
    assert await connection_id(pool) != first


async def test_recycle_counts_age_not_idle_time(make_pool: MakePool) -> None:
    pool = make_pool(mincached=0, maxconnections=1, recycle=0.4)
    first = await connection_id(pool)
    for _ in range(3):  # busy all along: never idle for long
        await asyncio.sleep(0.15)
        last = await connection_id(pool)
    assert last != first


async def test_a_connection_left_in_a_transaction_is_closed_not_reused(
    make_pool: MakePool, admin: Any
) -> None:
    await query(admin, "CREATE TABLE info (id INT PRIMARY KEY)")
    pool = make_pool(mincached=0, maxconnections=1)
    async with pool.connection() as conn:
        await conn.raw.begin()
        await query(conn.raw, "INSERT INTO info (id) VALUES (1)")
        victim = conn.thread_id
    stats = pool.stats()
    assert (stats["idle"], stats["discarded"]) == (0, 1)
    await wait_until_gone(admin, victim)
    assert await query(admin, "SELECT id FROM info") == []  # rolled back, not committed
    assert await connection_id(pool) != victim


async def test_a_server_error_keeps_the_connection(make_pool: MakePool) -> None:
    pool = make_pool(mincached=0, maxconnections=1)
    first = await connection_id(pool)
    with pytest.raises(Exception, match="1146"):
        async with pool.connection() as conn:
            await query(conn.raw, "SELECT * FROM no_such_table")
    assert await connection_id(pool) == first


async def test_cancelling_a_waiting_task_leaks_no_slot(make_pool: MakePool) -> None:
    pool = make_pool(mincached=0, maxconnections=1, acquire_timeout=5)
    held = await pool.acquire()
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert pool.stats()["waiting"] == 0
    pool.release(held)
    conn = await asyncio.wait_for(pool.acquire(), 0.5)
    pool.release(conn)
    assert pool.stats()["in_use"] == 0


async def test_cancelling_mid_query_discards_the_connection(
    make_pool: MakePool, admin: Any
) -> None:
    pool = make_pool(mincached=0, maxconnections=1)
    thread_ids: list[int] = []

    async def slow() -> None:
        async with pool.connection() as conn:
            thread_ids.append(conn.thread_id)
            await query(conn.raw, "SELECT SLEEP(30)")

    task = asyncio.create_task(slow())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stats = pool.stats()
    assert (stats["in_use"], stats["idle"], stats["discarded"]) == (0, 0, 1)
    await query(admin, "KILL %s", (thread_ids[0],))  # the server would sleep on otherwise
    assert await connection_id(pool) != thread_ids[0]


async def test_cancellation_storm_leaves_the_pool_consistent(make_pool: MakePool) -> None:
    pool = make_pool(mincached=0, maxconnections=3, acquire_timeout=0.5)

    async def work(n: int) -> None:
        async with pool.connection() as conn:
            await query(conn.raw, "SELECT SLEEP(%s)", (0.01 * (n % 5),))

    tasks = [asyncio.create_task(work(n)) for n in range(60)]
    for n, task in enumerate(tasks):
        if n % 3 == 0:
            await asyncio.sleep(0.003)
            task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(r is None or isinstance(r, asyncio.CancelledError | PoolExhausted)
               for r in results)
    stats = pool.stats()
    assert (stats["in_use"], stats["waiting"], stats["opening"]) == (0, 0, 0)
    assert int(stats["size"]) <= 3
    # Every slot came back: three checkouts at once succeed without waiting.
    conns = await asyncio.wait_for(asyncio.gather(*(pool.acquire() for _ in range(3))), 2)
    for conn in conns:
        pool.release(conn)


async def test_close_fails_waiters_and_closes_idle(make_pool: MakePool, admin: Any) -> None:
    pool = make_pool(mincached=0, maxconnections=1, acquire_timeout=5)
    held = await pool.acquire()
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.05)
    await pool.close()
    with pytest.raises(StoreError, match="clos"):
        await waiter
    pool.release(held)  # closed after use, not kept
    assert pool.stats()["size"] == 0
    await wait_until_gone(admin, held.thread_id)
