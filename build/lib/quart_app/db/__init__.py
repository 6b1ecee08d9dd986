"""The storage layer: the `info` table behind one `InfoStore` interface.

`DATABASE_URL` picks the backend: `mysql://user:password@host:port/db` (aiomysql through
our own pool) or `sqlite:///path` (aiosqlite; the embedded default). `DATABASE_POOL` holds
the pool settings, with DBUtils PooledDB's names (see `PoolSettings`).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigError
from .errors import (
    DuplicateId,
    NoSuchRow,
    PoolExhausted,
    RowChanged,
    RowRefused,
    StoreError,
    StoreRefused,
    StoreUnavailable,
)
from .extension import Database, current_store
from .models import InfoRow
from .pool_settings import PoolSettings
from .store import MAX_ID, MAX_PAGE_SIZE, MAX_ROW_ID, InfoStore
from .urls import EXPECTED_URL, parse_mysql_url, sqlite_path

__all__ = [
    "MAX_ID",
    "MAX_PAGE_SIZE",
    "MAX_ROW_ID",
    "Database",
    "DuplicateId",
    "InfoRow",
    "InfoStore",
    "NoSuchRow",
    "PoolExhausted",
    "PoolSettings",
    "RowChanged",
    "RowRefused",
    "StoreError",
    "StoreRefused",
    "StoreUnavailable",
    "check_database_url",
    "create_store",
    "current_store",
]


def create_store(url: str, pool: PoolSettings, *, base_dir: str | Path) -> InfoStore:
    """The store `url` names, not yet opened; relative SQLite paths are joined to `base_dir`.

    Raises `ConfigError` for a URL that is neither `mysql://` nor `sqlite:///`.
    """
    scheme = check_database_url(url)
    if scheme == "mysql":
        from .mysql_store import MySQLStore

        return MySQLStore(parse_mysql_url(url), pool)
    from .sqlite_store import SQLiteStore

    return SQLiteStore(sqlite_path(url, base_dir), pool)


def check_database_url(url: object) -> str:
    """Validate `DATABASE_URL` without connecting; returns its scheme."""
    if not isinstance(url, str):
        raise ConfigError("DATABASE_URL", url, EXPECTED_URL)
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        scheme = ""
    if scheme == "mysql":
        parse_mysql_url(url)
    elif scheme == "sqlite":
        sqlite_path(url, ".")
    else:
        raise ConfigError("DATABASE_URL", url, EXPECTED_URL)
    return scheme
