"""Which store `DATABASE_URL` names: checked without connecting, then built (not opened)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from ..config import mask_password
from ..errors import ConfigError
from .pool_settings import PoolSettings
from .store import InfoStore
from .urls import EXPECTED_URL, parse_mysql_url, sqlite_path


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
        raise ConfigError("DATABASE_URL", mask_password(url), EXPECTED_URL)
    return scheme
