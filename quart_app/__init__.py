"""quart_app: the Flask caching-and-signals tutorial, rebuilt on Quart, aiocache and blinker."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from quart import Quart

from .blueprints.health import health
from .blueprints.seed import seed
from .config import load_config
from .extensions import cache
from .http_errors import register_error_handlers
from .receivers import connect_receivers


def create_app(config: Mapping[str, Any] | None = None) -> Quart:
    """Build the app: defaults, settings file, QUART_* environment, then `config` (later wins)."""
    app = Quart(__name__)
    load_config(app.config, config)
    _configure_logging(app.config["LOG_LEVEL"])
    cache.init_app(app)
    register_error_handlers(app)
    app.register_blueprint(health)
    if app.config["SEED_ROUTES"]:
        app.register_blueprint(seed)
    connect_receivers(app)
    return app


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
