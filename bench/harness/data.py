"""The benchmark's data: the `info` table in MariaDB (seeded, insert ids, counts) and Redis."""

from __future__ import annotations

from typing import Any

import pymysql
import redis

from .places import DB_NAME, MYSQL, REDIS_URL

SEED_ROWS = 50  # rows present before any scenario, so the list view has a full page
INT_MAX = 2**31 - 1

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS info (
    id INT PRIMARY KEY,
    name VARCHAR(64) NOT NULL,
    money DECIMAL(12,2) NOT NULL,
    seq BIGINT NOT NULL AUTO_INCREMENT UNIQUE
)
"""


def mysql(database: str | None = DB_NAME) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(**MYSQL, database=database, autocommit=True)


def prepare_database(keep: bool) -> None:
    conn = mysql(None)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DB_NAME}`")
        cur.execute(f"USE `{DB_NAME}`")
        cur.execute(CREATE_TABLE)
        if not keep:
            cur.execute("TRUNCATE TABLE info")
        cur.execute("SELECT COUNT(*) FROM info WHERE id BETWEEN 1 AND %s", (SEED_ROWS,))
        if cur.fetchone()[0] == 0:
            cur.executemany(
                "INSERT INTO info (id, name, money) VALUES (%s, %s, %s)",
                [(i, f"seed{i}", f"{i * 10}.25") for i in range(1, SEED_ROWS + 1)],
            )
    conn.close()


_reserved_top = 0  # highest id handed out by allocate_ids() in this process


def allocate_ids(count: int) -> int:
    """First id of a block of `count` ids above every id in the table or handed out before."""
    global _reserved_top
    conn = mysql()
    with conn.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM info")
        top = max(int(cur.fetchone()[0]), _reserved_top)
    conn.close()
    base = (top // 1000 + 1) * 1000
    if base + count - 1 > INT_MAX:
        raise RuntimeError("insert ids would pass INT max: run without --keep-data")
    _reserved_top = base + count - 1
    return base


def count_rows(ranges: list[tuple[int, int]]) -> list[int]:
    conn = mysql()
    out = []
    with conn.cursor() as cur:
        for lo, hi in ranges:
            cur.execute("SELECT COUNT(*) FROM info WHERE id BETWEEN %s AND %s", (lo, hi))
            out.append(int(cur.fetchone()[0]))
    conn.close()
    return out


def flush_redis() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()
