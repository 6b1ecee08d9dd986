"""Reading `DATABASE_URL`: a MySQL server address or an SQLite file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from ..config import mask_password
from ..errors import ConfigError

EXPECTED_URL = "mysql://user:password@host:port/db or sqlite:///relative/or/absolute.sqlite3"

# Database names are interpolated into CREATE DATABASE (identifiers cannot be parameters),
# so only plain names are accepted.
_DATABASE_NAME = re.compile(r"[A-Za-z0-9_$]{1,64}")


@dataclass(frozen=True, slots=True)
class MySQLAddress:
    """Where the MySQL store connects; `display_url` is safe to log."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str

    @property
    def display_url(self) -> str:
        user = quote(self.user, safe="")
        secret = ":***" if self.password else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mysql://{user}{secret}@{host}:{self.port}/{self.database}"


def parse_mysql_url(url: str) -> MySQLAddress:
    """Split `mysql://user:password@host:port/db`; raises `ConfigError` on anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port or 3306
    except ValueError:
        raise ConfigError("DATABASE_URL", mask_password(url), EXPECTED_URL) from None
    database = parts.path.lstrip("/")
    if parts.scheme != "mysql" or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError("DATABASE_URL", mask_password(url), EXPECTED_URL)
    if not _DATABASE_NAME.fullmatch(database):
        raise ConfigError("DATABASE_URL", mask_password(url),
                          "a database name of letters, digits, _ or $ after the /")
    return MySQLAddress(
        host=parts.hostname,
        port=port,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=database,
    )


def sqlite_path(url: str, base_dir: str | Path) -> str:
    """The file named by `sqlite:///path`, relative paths joined to `base_dir`.

    `sqlite:///:memory:` gives an in-memory database (one per store, gone on close).
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # unbalanced brackets
        raise ConfigError("DATABASE_URL", mask_password(url), EXPECTED_URL) from None
    if parts.scheme != "sqlite" or parts.netloc or parts.query or parts.fragment:
        raise ConfigError("DATABASE_URL", mask_password(url), EXPECTED_URL)
    # urlsplit keeps the slash that separates an empty host from the path: strip that one.
    path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not path:
        raise ConfigError("DATABASE_URL", mask_password(url), EXPECTED_URL)
    if path == ":memory:":
        return path
    return str(Path(base_dir, path).resolve())
