"""`Database`: the storage layer as a Quart extension (pgjones' shape)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from quart import Quart, current_app, has_app_context

from .factory import check_database_url, create_store
from .pool_settings import PoolSettings
from .store import InfoStore

EXTENSION_KEY = "database"


class Database:
    """Opens the `InfoStore` that `DATABASE_URL` names while the app serves.

    Use it directly, `Database(app)`, or through a factory, `db = Database()` then
    `db.init_app(app)`. Settings are checked by `init_app`, so a bad one stops start-up
    with `ConfigError`; the store is created and opened (schema included) in
    `before_serving`, and closed in `after_serving`. An unreachable database does not stop
    start-up: requests get `StoreUnavailable` until it answers.

    One instance may serve several apps (each gets its own store); `store` picks the
    current app's, or the only one serving outside an app context.
    """

    def __init__(self, app: Quart | None = None) -> None:
        self._stores: dict[int, InfoStore] = {}
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Quart) -> None:
        """Check the app's database settings and hook the store into its serving lifecycle."""
        _read_settings(app.config)
        app.extensions[EXTENSION_KEY] = self
        app.before_serving(self._before_serving)
        app.after_serving(self._after_serving)

    @property
    def store(self) -> InfoStore:
        """The serving app's store; `RuntimeError` when no app is serving."""
        if has_app_context():
            store = self._stores.get(_current_app_key())
            if store is not None:
                return store
        elif len(self._stores) == 1:
            return next(iter(self._stores.values()))
        raise RuntimeError("the database store exists only while the app is serving")

    async def _before_serving(self) -> None:
        # Runs inside the app context, so config changed after init_app is seen too.
        url, settings = _read_settings(current_app.config)
        store = create_store(url, settings, base_dir=current_app.instance_path)
        await store.open()
        self._stores[_current_app_key()] = store

    async def _after_serving(self) -> None:
        store = self._stores.pop(_current_app_key(), None)
        if store is not None:
            await store.close()


def current_store() -> InfoStore:
    """The current app's store (the one accessor: no module looks up the extension by name)."""
    database: Database = current_app.extensions[EXTENSION_KEY]
    return database.store


def _current_app_key() -> int:
    """Identifies the app (not its proxy) without holding a reference to it."""
    return id(cast(Any, current_app)._get_current_object())


def _read_settings(config: Mapping[str, Any]) -> tuple[str, PoolSettings]:
    url = config.get("DATABASE_URL")
    check_database_url(url)
    assert isinstance(url, str)
    return url, PoolSettings.from_mapping(config.get("DATABASE_POOL", {}))
