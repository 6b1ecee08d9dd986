"""`DATABASE_POOL`: the tutorial's DBUtils PooledDB settings, plus the few a network pool needs.

The names are PooledDB's, matched case-insensitively because they arrive lower case from
settings.toml and upper case from `QUART_DATABASE_POOL__*` environment variables. Values are
read by config.py's helpers, so a pool setting takes the spellings every other setting takes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..config import as_bool, as_int, as_seconds
from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """How the MySQL store pools its connections (the SQLite store uses only a few).

    PooledDB's settings, with PooledDB's meanings:

    - `mincached`: connections opened at start-up (0 = none).
    - `maxcached`: idle connections kept for reuse; more are closed when released
      (0 = no limit other than `maxconnections`).
    - `maxconnections`: connections open at once, idle or busy (0 = no limit).
    - `maxshared`: accepted for compatibility and ignored: an async pool never shares one
      connection between two tasks, because MySQL's protocol allows one query at a time.
    - `blocking`: when every connection is busy, wait for one (true) or raise
      `PoolExhausted` at once (false).
    - `maxusage`: checkouts a connection serves before it is replaced (None = unlimited).
    - `setsession`: SQL statements run on every new connection.
    - `ping`: 0 = never check a connection before handing it out; any other value (PooledDB's
      1, 2, 4 or 7, or true) = ping it on every checkout, because here one checkout is one
      store operation.

    Beyond PooledDB:

    - `acquire_timeout`: seconds a blocking checkout waits before `PoolExhausted`.
    - `recycle`: replace connections older than this many seconds (age since the connection
      was made, not idle time; 0 = never).
    - `connect_timeout`: seconds allowed to open a connection, handshake included.
    - `query_timeout`: seconds one store operation may take on its connection; past it the
      connection is closed and the operation fails with `StoreUnavailable`. An insert is
      also limited on the server (`max_statement_time`), so one stuck in a lock wait is
      ended there, definitely unstored, before the client gives up on it.

    The SQLite store uses `acquire_timeout` as its busy timeout and ignores the rest.
    """

    mincached: int = 2
    maxcached: int = 5
    maxconnections: int = 6
    maxshared: int = 3
    blocking: bool = True
    maxusage: int | None = None
    setsession: tuple[str, ...] = ()
    ping: int = 0
    acquire_timeout: float = 5.0
    recycle: float = 0.0
    connect_timeout: float = 3.0
    query_timeout: float = 10.0

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> PoolSettings:
        """Build settings from `DATABASE_POOL`, checking every value.

        Keys are case-insensitive (when two spellings of one key appear, the later wins);
        values may be native (ints, bools, lists) or strings from the environment ("12",
        "true", a JSON list). Raises `ConfigError` naming the first bad key.
        """
        if mapping is None:
            mapping = {}
        if not isinstance(mapping, Mapping):
            raise ConfigError("DATABASE_POOL", mapping, "a table of pool settings")
        defaults: dict[str, Any] = {field.name: field.default for field in fields(cls)}
        known = set(defaults)
        raw: dict[str, Any] = {}
        for key, value in mapping.items():
            name = key.lower() if isinstance(key, str) else key
            if name not in known:
                raise ConfigError(
                    f"DATABASE_POOL.{key}", value, "one of " + ", ".join(sorted(known))
                )
            raw[name] = value

        values: dict[str, Any] = {}
        for name, value in raw.items():
            values[name] = _PARSERS[name](f"DATABASE_POOL.{name}", value)
        # A smaller maxconnections shrinks the cache defaults with it; only values the user
        # gave are held to the bounds below.
        limit = values.get("maxconnections", defaults["maxconnections"])
        if "maxcached" not in values and limit:
            values["maxcached"] = min(defaults["maxcached"], limit)
        if "mincached" not in values:
            cap = min(filter(None, (limit, values.get("maxcached"))), default=0)
            values["mincached"] = min(defaults["mincached"], cap) if cap else defaults["mincached"]
        settings = cls(**values)
        settings._check_bounds()
        return settings

    def _check_bounds(self) -> None:
        if self.maxcached and self.mincached > self.maxcached:
            raise ConfigError(
                "DATABASE_POOL.mincached", self.mincached,
                f"at most maxcached ({self.maxcached})",
            )
        if self.maxconnections:
            for name in ("mincached", "maxcached"):
                value = getattr(self, name)
                if value > self.maxconnections:
                    raise ConfigError(
                        f"DATABASE_POOL.{name}", value,
                        f"at most maxconnections ({self.maxconnections})",
                    )


def _as_count(key: str, value: Any) -> int:
    """A PooledDB size, where None means 0 (no connections, or no limit)."""
    return 0 if value is None else as_int(key, value)


def _as_maxusage(key: str, value: Any) -> int | None:
    count = _as_count(key, value)
    return count or None


def _as_ping(key: str, value: Any) -> int:
    """PooledDB's 0 to 7, or a boolean: 0 or 1, since one checkout is one store operation."""
    try:
        return int(as_bool(key, value))
    except ConfigError:
        pass
    try:
        ping = as_int(key, value)
    except ConfigError:
        ping = -1
    if not 0 <= ping <= 7:
        raise ConfigError(key, value, "0 (never) or 1 (on every checkout), or a boolean")
    return 1 if ping else 0


def _as_statements(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if value is None:
        return ()
    if (
        isinstance(value, list | tuple)
        and all(isinstance(item, str) and item.strip() for item in value)
    ):
        return tuple(value)
    raise ConfigError(key, value, "a list of SQL statements, e.g. [\"SET time_zone = '+00:00'\"]")


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "mincached": _as_count,
    "maxcached": _as_count,
    "maxconnections": _as_count,
    "maxshared": _as_count,
    "blocking": as_bool,
    "maxusage": _as_maxusage,
    "setsession": _as_statements,
    "ping": _as_ping,
    "acquire_timeout": as_seconds,
    "recycle": lambda key, value: as_seconds(key, value, allow_zero=True),
    "connect_timeout": as_seconds,
    "query_timeout": as_seconds,
}
