"""quart_app: the Flask caching-and-signals tutorial, rebuilt on Quart, aiocache and blinker."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from quart import Quart, Response
from quart_schema import QuartSchema

from . import request_id, serving
from .blueprints.health import health
from .blueprints.info import info_api
from .blueprints.seed import seed
from .blueprints.stats import stats
from .bus import SignalBus
from .config import load_config
from .db import Database
from .extensions import cache
from .http_errors import register_error_handlers
from .receivers import connect_receivers
from .sessions import CachedSignerSessionInterface
from .validation import register_validation_errors


def create_app(config: Mapping[str, Any] | None = None) -> Quart:
    """Build the app: defaults, settings file, QUART_* environment, then `config` (later wins)."""
    app = Quart(__name__)
    load_config(app.config, config)
    _configure_logging(app.config["LOG_LEVEL"])
    _ensure_secret_key(app)
    request_id.init_app(app)
    app.session_interface = CachedSignerSessionInterface()
    cache.init_app(app)
    Database(app)
    _add_schema(app)
    register_error_handlers(app)
    register_validation_errors(app)
    app.register_blueprint(health)
    app.register_blueprint(info_api)
    app.register_blueprint(stats)
    if app.config["SEED_ROUTES"]:
        app.register_blueprint(seed)
    connect_receivers(app)
    _add_signal_bus(app)
    serving.init_app(app)
    return app


def _add_signal_bus(app: Quart) -> None:
    if app.config["SIGNALS_BUS_URL"]:
        SignalBus(app)
    elif app.config["WORKERS"] > 1 and app.config["CACHE_TYPE"] == "SimpleCache":
        logging.getLogger("quart_app").warning(
            "%d workers share no cache: with CACHE_TYPE = SimpleCache and no "
            "SIGNALS_BUS_URL, an insert invalidates only the cache of the worker that "
            "handled it; use RedisCache or set SIGNALS_BUS_URL", app.config["WORKERS"],
        )


PLAIN_RESULTS = (str, bytes, dict, Response)


def _add_schema(app: Quart) -> None:
    """quart-schema for validation and the OpenAPI document, with a fast path in its hook.

    QuartSchema wraps `app.make_response` to turn returned models into JSON, and pays for it
    on every response (6% of a cached read, profiled). Results that hold no model (text, bytes,
    a dict, a finished Response, alone or first in a tuple) skip the conversion.
    """
    plain_make_response = app.make_response
    QuartSchema(
        app, openapi_path="/api/openapi.json", swagger_ui_path="/api/docs",
        redoc_ui_path=None, scalar_ui_path=None,
        info={"title": "quart_app", "version": "0.1.0"},
    )
    converting_make_response = app.make_response

    async def make_response(result: Any) -> Any:
        value = result[0] if isinstance(result, tuple) and result else result
        if isinstance(value, PLAIN_RESULTS):
            return await plain_make_response(result)
        return await converting_make_response(result)

    app.make_response = make_response  # type: ignore[method-assign]


def _ensure_secret_key(app: Quart) -> None:
    if app.config["SECRET_KEY"] is None:
        # Flashed messages need a signed session; a key made here lasts one process.
        app.config["SECRET_KEY"] = secrets.token_urlsafe(32)
        logging.getLogger("quart_app").info(
            "QUART_SECRET_KEY is not set: using a random key, so sessions (flashed "
            "messages) do not survive a restart nor cross workers"
        )


def _configure_logging(level: str) -> None:
    logger = logging.getLogger("quart_app")
    logger.setLevel(level)
    # Our own handler only when nobody (pytest, the user's logging config) has set one up;
    # on the root logger it would also print hypercorn's lines a second time.
    if not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(asctime)s] [%(process)d] [%(levelname)s] "
                                               "%(name)s: %(message)s"))
        logger.addHandler(handler)
