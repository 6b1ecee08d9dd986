"""The Database extension: settings checked at init_app, the store open while serving."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

from quart_app.db import Database, InfoRow, StoreUnavailable
from quart_app.db.sqlite_store import SQLiteStore
from quart_app.errors import ConfigError

from ..support import free_port


def make_app(tmp_path: Path, **config: Any) -> Quart:
    app = Quart(__name__, instance_path=str(tmp_path / "instance"))
    app.config.update(config)
    return app


async def test_the_store_is_open_while_serving(tmp_path: Path) -> None:
    app = make_app(tmp_path, DATABASE_URL="sqlite:///data/app.sqlite3")
    db = Database(app)
    assert app.extensions["database"] is db
    with pytest.raises(RuntimeError):
        _ = db.store
    async with app.test_app():
        store = db.store
        assert isinstance(store, SQLiteStore)
        # Relative SQLite paths live in the instance folder, created on demand.
        assert store.path == str(tmp_path / "instance" / "data" / "app.sqlite3")
        assert await store.insert(5, "redis", Decimal("588")) == InfoRow(5, "redis", Decimal("588"))
        async with app.app_context():
            assert db.store is store
    with pytest.raises(RuntimeError):
        _ = db.store
    assert not hasattr(db, "app")


async def test_factory_pattern_and_two_apps_serving_at_once(tmp_path: Path) -> None:
    db = Database()
    first = make_app(tmp_path / "a", DATABASE_URL="sqlite:///one.sqlite3")
    second = make_app(tmp_path / "b", DATABASE_URL="sqlite:///two.sqlite3")
    db.init_app(first)
    db.init_app(second)
    async with first.test_app(), second.test_app():
        async with first.app_context():
            await db.store.insert(1, "first", Decimal("1"))
        async with second.app_context():
            assert await db.store.get(1) is None
        with pytest.raises(RuntimeError):
            _ = db.store  # two serving, no app context: ambiguous


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({}, "DATABASE_URL"),
        ({"DATABASE_URL": "redis://localhost/0"}, "DATABASE_URL"),
        ({"DATABASE_URL": "sqlite:///x.sqlite3", "DATABASE_POOL": {"size": 3}},
         "DATABASE_POOL.size"),
        ({"DATABASE_URL": "sqlite:///x.sqlite3", "DATABASE_POOL": {"BLOCKING": "perhaps"}},
         "DATABASE_POOL.blocking"),
    ],
)
def test_bad_settings_stop_init_app(tmp_path: Path, config: dict[str, Any], key: str) -> None:
    app = make_app(tmp_path, **config)
    with pytest.raises(ConfigError) as caught:
        Database(app)
    assert caught.value.key == key


async def test_an_unreachable_mysql_does_not_stop_start_up(tmp_path: Path) -> None:
    app = make_app(
        tmp_path,
        DATABASE_URL=f"mysql://root@127.0.0.1:{free_port()}/quart_app_test",
        DATABASE_POOL={"connect_timeout": 1},
    )
    db = Database(app)
    async with app.test_app():
        with pytest.raises(StoreUnavailable):
            await db.store.insert(None, "x", Decimal("1"))
