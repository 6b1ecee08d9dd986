"""create_store: picking the backend from DATABASE_URL."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from quart_app.config import mask_password
from quart_app.db import InfoRow, PoolSettings, create_store
from quart_app.db.mysql_store import MySQLStore
from quart_app.db.sqlite_store import SQLiteStore
from quart_app.errors import ConfigError


def test_mysql_url_gives_the_aiomysql_store(tmp_path: Path) -> None:
    store = create_store("mysql://root@127.0.0.1:3306/school", PoolSettings(), base_dir=tmp_path)
    assert isinstance(store, MySQLStore)
    assert store.display_url == "mysql://root@127.0.0.1:3306/school"


def test_mysql_url_escapes_and_defaults(tmp_path: Path) -> None:
    store = create_store("mysql://u%40x:p%2Fw@db/school", PoolSettings(), base_dir=tmp_path)
    assert store.display_url == "mysql://u%40x:***@db:3306/school"


async def test_relative_sqlite_path_is_joined_to_base_dir(tmp_path: Path) -> None:
    store = create_store("sqlite:///data/sub/app.sqlite3", PoolSettings(), base_dir=tmp_path)
    assert isinstance(store, SQLiteStore)
    assert store.path == str(tmp_path / "data" / "sub" / "app.sqlite3")
    await store.open()
    try:
        assert (tmp_path / "data" / "sub" / "app.sqlite3").exists()
    finally:
        await store.close()


def test_absolute_sqlite_path_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "abs.sqlite3"
    store = create_store(f"sqlite:///{target}", PoolSettings(), base_dir="/elsewhere")
    assert isinstance(store, SQLiteStore)
    assert store.path == str(target)
    assert store.display_url == f"sqlite:///{target}"


async def test_in_memory_sqlite(tmp_path: Path) -> None:
    store = create_store("sqlite:///:memory:", PoolSettings(), base_dir=tmp_path)
    await store.open()
    try:
        assert await store.insert(None, "m", Decimal("1")) == InfoRow(1, "m", Decimal("1.00"))
    finally:
        await store.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://localhost/db",
        "mysql+aiomysql://root@localhost/db",
        "mysql://root@localhost",
        "mysql://root@localhost/bad-name",
        "mysql://root@localhost/db?charset=latin1",
        "mysql://root@localhost:notaport/db",
        "sqlite://host/file.sqlite3",
        "sqlite:///",
        "quart_app.sqlite3",
        "",
    ],
)
def test_unusable_urls_are_config_errors(url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        create_store(url, PoolSettings(), base_dir=tmp_path)
    assert caught.value.key == "DATABASE_URL"


@pytest.mark.parametrize("url", [
    "mysql://root:hunter2@localhost:99999/db",
    "mysql://root:hun@ter2@localhost/db?charset=latin1",
    "mysql://root:hun/ter2@localhost/bad-name",
    "mysql://root:hunter2@[::1/db",
    "sqlite://root:hunter2@host/file.sqlite3",
    "postgres://root:hunter2@localhost/db",
])
def test_a_bad_url_error_never_shows_the_password(url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        create_store(url, PoolSettings(), base_dir=tmp_path)
    assert "ter2" not in str(caught.value)
    # The settings refuse a URL with the same words: one way of hiding a password.
    assert caught.value.value == mask_password(url)


async def test_unopenable_sqlite_file_does_not_stop_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from quart_app.db import StoreUnavailable

    (tmp_path / "taken").write_text("a file where a directory should be")
    store = create_store("sqlite:///taken/app.sqlite3", PoolSettings(), base_dir=tmp_path)
    await store.open()
    with pytest.raises(StoreUnavailable):
        await store.insert(None, "x", Decimal("1"))
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1
    (tmp_path / "taken").unlink()
    assert (await store.insert(None, "x", Decimal("1"))).id == 1
    await store.close()


def test_to_json_always_has_two_places() -> None:
    assert InfoRow(1, "a", Decimal("5")).to_json() == {"id": 1, "name": "a", "money": "5.00"}
    assert InfoRow(1, "a", Decimal("-0.1")).to_json()["money"] == "-0.10"
    assert InfoRow(1, "a", Decimal("9999999999.99")).to_json()["money"] == "9999999999.99"
    assert InfoRow(1, "a", Decimal("1E+3")).to_json()["money"] == "1000.00"
