"""DATABASE_POOL: PooledDB's names, any case, values from TOML or the environment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from quart_app import create_app
from quart_app.db import PoolSettings
from quart_app.errors import ConfigError


def test_defaults_are_the_tutorials_pooleddb_settings() -> None:
    settings = PoolSettings.from_mapping({})
    assert settings == PoolSettings()
    assert (settings.maxconnections, settings.mincached, settings.maxcached) == (6, 2, 5)
    assert (settings.maxshared, settings.blocking, settings.maxusage) == (3, True, None)
    assert (settings.setsession, settings.ping) == ((), 0)
    assert (settings.acquire_timeout, settings.recycle, settings.connect_timeout) == (5, 0, 3)
    assert PoolSettings.from_mapping(None) == settings


def test_the_tutorials_settings_as_written_in_toml() -> None:
    tutorial: dict[str, Any] = {"maxconnections": 6, "mincached": 2, "maxcached": 5, "maxshared": 3,
            "blocking": True, "maxusage": None, "setsession": [], "ping": 0}
    assert PoolSettings.from_mapping(tutorial) == PoolSettings()


def test_keys_are_case_insensitive_and_the_later_spelling_wins() -> None:
    assert PoolSettings.from_mapping({"MAXCONNECTIONS": 9}).maxconnections == 9
    assert PoolSettings.from_mapping({"maxconnections": 8, "MAXCONNECTIONS": 9}).maxconnections == 9
    assert PoolSettings.from_mapping({"MAXCONNECTIONS": 9, "maxConnections": 8}).maxconnections == 8


def test_strings_from_the_environment() -> None:
    settings = PoolSettings.from_mapping({
        "MAXCONNECTIONS": "12", "BLOCKING": "false", "PING": "true", "MAXUSAGE": "100",
        "SETSESSION": '["SET time_zone = \'+00:00\'"]', "ACQUIRE_TIMEOUT": "0.5",
        "RECYCLE": "3600", "CONNECT_TIMEOUT": "2",
    })
    assert settings.maxconnections == 12
    assert settings.blocking is False
    assert settings.ping == 1
    assert settings.maxusage == 100
    assert settings.setsession == ("SET time_zone = '+00:00'",)
    assert (settings.acquire_timeout, settings.recycle, settings.connect_timeout) == (0.5, 3600, 2)


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (1, 1), (7, 1), (2, 1), (True, 1),
                                                 (False, 0), ("0", 0), ("yes", 1)])
def test_ping_accepts_pooleddb_values_and_booleans(value: Any, expected: int) -> None:
    assert PoolSettings.from_mapping({"ping": value}).ping == expected


@pytest.mark.parametrize("value", [0, None, "0"])
def test_maxusage_zero_or_none_is_unlimited(value: Any) -> None:
    assert PoolSettings.from_mapping({"maxusage": value}).maxusage is None


def test_zero_maxconnections_and_maxcached_mean_no_limit() -> None:
    settings = PoolSettings.from_mapping({"maxconnections": 0, "maxcached": 0, "mincached": 9})
    assert (settings.maxconnections, settings.maxcached, settings.mincached) == (0, 0, 9)


def test_a_small_maxconnections_shrinks_the_defaults_it_was_not_given() -> None:
    settings = PoolSettings.from_mapping({"maxconnections": 1})
    assert (settings.maxconnections, settings.maxcached, settings.mincached) == (1, 1, 1)
    assert PoolSettings.from_mapping({"maxcached": 1}).mincached == 1


@pytest.mark.parametrize(
    ("mapping", "key", "expected"),
    [
        ({"maxconnection": 6}, "DATABASE_POOL.maxconnection", "one of"),
        ({"Size": 6}, "DATABASE_POOL.Size", "one of"),
        ({"maxconnections": -1}, "DATABASE_POOL.maxconnections", ">= 0"),
        ({"maxconnections": "six"}, "DATABASE_POOL.maxconnections", "whole number"),
        ({"maxconnections": True}, "DATABASE_POOL.maxconnections", "whole number"),
        ({"maxconnections": 2.5}, "DATABASE_POOL.maxconnections", "whole number"),
        ({"blocking": "maybe"}, "DATABASE_POOL.blocking", "true or false"),
        ({"blocking": 2}, "DATABASE_POOL.blocking", "true or false"),
        ({"ping": 8}, "DATABASE_POOL.ping", "0 (never) or 1"),
        ({"ping": "sometimes"}, "DATABASE_POOL.ping", "0 (never) or 1"),
        ({"setsession": "SET x = 1"}, "DATABASE_POOL.setsession", "list of SQL"),
        ({"setsession": [1]}, "DATABASE_POOL.setsession", "list of SQL"),
        ({"acquire_timeout": 0}, "DATABASE_POOL.acquire_timeout", "> 0"),
        ({"acquire_timeout": "inf"}, "DATABASE_POOL.acquire_timeout", "> 0"),
        ({"recycle": -1}, "DATABASE_POOL.recycle", ">= 0"),
        ({"connect_timeout": "soon"}, "DATABASE_POOL.connect_timeout", "> 0"),
        ({"mincached": 6, "maxcached": 5}, "DATABASE_POOL.mincached", "at most maxcached (5)"),
        ({"maxcached": 7}, "DATABASE_POOL.maxcached", "at most maxconnections (6)"),
        ({"MINCACHED": 3, "maxconnections": 2, "maxcached": 0},
         "DATABASE_POOL.mincached", "at most maxconnections (2)"),
    ],
)
def test_bad_values_name_key_value_and_expectation(
    mapping: dict[str, Any], key: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        PoolSettings.from_mapping(mapping)
    assert caught.value.key == key
    assert expected in caught.value.expected
    assert "\n" not in str(caught.value)


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="DATABASE_POOL"):
        PoolSettings.from_mapping(["maxconnections"])  # type: ignore[arg-type]


def _outcome(read: Callable[[], Any]) -> tuple[str, Any]:
    """What reading a setting gave: its value, or what the refusal expected."""
    try:
        return "read", read()
    except ConfigError as error:
        return "refused", error.expected


@pytest.mark.parametrize("value", [
    True, False, 1, 0, "true", "FALSE", "yes", "No", "on", "OFF", "1", "0", " yes ",
    2, -1, 1.0, "", "y", "maybe", None,
])
def test_a_pool_boolean_is_read_as_a_top_level_one(value: Any) -> None:
    top_level = _outcome(lambda: create_app({"CACHE_FAST_HITS": value}).config["CACHE_FAST_HITS"])
    pool = _outcome(lambda: PoolSettings.from_mapping({"blocking": value}).blocking)
    assert pool == top_level


# Not None: to PooledDB's sizes it means 0.
@pytest.mark.parametrize("value", [
    12, "12", " 12 ", "+12", 12.0, 0, "0", -1, "-1", 2.5, "2.5", True, "six", "1_000", "\u0665",
    "\u00b2", "+-5",
])
def test_a_pool_size_is_read_as_a_top_level_whole_number(value: Any) -> None:
    top_level = _outcome(
        lambda: create_app({"CACHE_DEFAULT_TIMEOUT": value}).config["CACHE_DEFAULT_TIMEOUT"])
    pool = _outcome(lambda: PoolSettings.from_mapping(
        {"maxconnections": value, "maxcached": 0, "mincached": 0}).maxconnections)
    assert pool == top_level


@pytest.mark.parametrize("value", [
    0.5, "0.5", " 2 ", 3, 0, "0", -1, "inf", float("inf"), "nan", True, "soon", None,
])
def test_a_pool_timeout_is_read_as_a_top_level_one(value: Any) -> None:
    top_level = _outcome(
        lambda: create_app({"CACHE_REDIS_TIMEOUT": value}).config["CACHE_REDIS_TIMEOUT"])
    pool = _outcome(lambda: PoolSettings.from_mapping({"acquire_timeout": value}).acquire_timeout)
    assert pool == top_level


def test_a_settings_file_spells_booleans_the_same_in_the_pool_table(settings_file: Path) -> None:
    settings_file.write_text('CACHE_FAST_HITS = "off"\n[DATABASE_POOL]\nblocking = "off"\n')
    config = create_app().config
    assert config["CACHE_FAST_HITS"] is False
    assert PoolSettings.from_mapping(config["DATABASE_POOL"]).blocking is False
