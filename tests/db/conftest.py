"""Fixtures for the storage layer: a store per backend, MariaDB pools and an admin connection.

Every MariaDB test starts from an empty `info` table in this test run's own database
(`quart_app_test_<pid>`; the fixtures drop the table, and the store under test creates it again).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomysql
import pymysql
import pytest

from quart_app.db import InfoStore, PoolSettings, create_store
from quart_app.db.mysql_pool import MySQLPool
from quart_app.db.urls import parse_mysql_url

from ..services import MYSQL_URL, require_service
from ..throwaway_mariadb import mariadb_datadir_template, throwaway_mariadb  # noqa: F401


@pytest.fixture
def mysql_url() -> str:
    """The shared test server's URL, with an empty `info` table (skips without a server)."""
    url = require_service("MariaDB", MYSQL_URL)
    address = parse_mysql_url(url)
    conn = pymysql.connect(
        host=address.host, port=address.port, user=address.user, password=address.password,
        autocommit=True,
    )
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{address.database}`")
            cur.execute(f"USE `{address.database}`")
            cur.execute("DROP TABLE IF EXISTS info")
            cur.execute("DROP SEQUENCE IF EXISTS info_seq")
    finally:
        conn.close()
    return url


@pytest.fixture
async def admin(mysql_url: str) -> AsyncIterator[Any]:
    """A plain aiomysql connection outside any pool, to look at the table and KILL others."""
    address = parse_mysql_url(mysql_url)
    conn = await aiomysql.connect(
        host=address.host, port=address.port, user=address.user, password=address.password,
        db=address.database, autocommit=True,
    )
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(params=["sqlite", "mysql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh SQLite file, then the shared MariaDB with an empty table."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'info.sqlite3'}"
    url: str = request.getfixturevalue("mysql_url")
    return url


@pytest.fixture
async def store(store_url: str, tmp_path: Path) -> AsyncIterator[InfoStore]:
    """An opened store, once on SQLite and once on the shared MariaDB."""
    store = create_store(store_url, PoolSettings(), base_dir=tmp_path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def make_pool(mysql_url: str) -> AsyncIterator[Callable[..., MySQLPool]]:
    """Build MySQLPools on the shared server from PooledDB-style keyword settings."""
    pools: list[MySQLPool] = []

    def make(**settings: Any) -> MySQLPool:
        pool = MySQLPool(parse_mysql_url(mysql_url), PoolSettings.from_mapping(settings))
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.close()
