"""The storage layer: the `info` table behind one `InfoStore` interface.

`DATABASE_URL` picks the backend: `mysql://user:password@host:port/db` (aiomysql through
our own pool) or `sqlite:///path` (aiosqlite; the embedded default). `DATABASE_POOL` holds
the pool settings, with DBUtils PooledDB's names (see `PoolSettings`).
"""

from __future__ import annotations

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
from .factory import check_database_url, create_store
from .models import InfoRow
from .pool_settings import PoolSettings
from .store import MAX_ID, MAX_PAGE_SIZE, MAX_ROW_ID, InfoStore

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
