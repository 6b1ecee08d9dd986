"""quart_app: the Flask caching-and-signals tutorial, rebuilt on Quart, aiocache and blinker."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from quart import Quart, Response
from quart_schema import QuartSchema

from . import instrumentation, request_body, request_id, serving
from .blueprints import docs
from .blueprints import metrics as metrics_route
from .blueprints.health import health
from .blueprints.stats import stats
from .blueprints.tutorial import tutorial
from .bus import SignalBus
from .cache.fast_hits import FastHits
from .config import load_config
from .db import Database
from .dispatch import set_relay
from .extensions import cache
from .http_errors import register_error_handlers
from .info import connect_invalidation, info_api
from .logs import configure_logging
from .openapi import Provider
from .receivers import connect_receivers
from .receivers.visits import count_visit
from .sessions import CachedSignerSessionInterface
from .validation import register_validation_errors


def create_app(config: Mapping[str, Any] | None = None) -> Quart:
    """Build the app: defaults, settings file, QUART_* environment, then `config` (later wins)."""
    app = Quart(__name__)
    load_config(app.config, config)
    if app.config["INSTANCE_PATH"]:
        # Where the embedded SQLite database goes; by default Quart's instance folder:
        # `instance/` beside the package in a checkout, `<prefix>/var/quart_app-instance`
        # when installed (never inside site-packages).
        app.instance_path = app.config["INSTANCE_PATH"]
    configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
    _ensure_secret_key(app)
    request_body.init_app(app)  # bodies a view may stream (NDJSON bulk loads)
    # ASGI middlewares, innermost first: fast hits answer inside the metrics (so they are
    # counted) and inside the request id (so they carry one, as their log lines do).
    _add_fast_hits(app)
    instrumentation.init_app(app)  # before request_id: it counts inside that middleware
    request_id.init_app(app)
    app.session_interface = CachedSignerSessionInterface()
    cache.init_app(app)
    Database(app)
    _add_schema(app)
    docs.init_app(app)
    register_error_handlers(app)
    register_validation_errors(app)
    app.register_blueprint(health)
    app.register_blueprint(info_api)
    app.register_blueprint(stats)
    metrics_route.init_app(app)  # with METRICS = false, a 404 (not the catch-all's page)
    if app.config["TUTORIAL_ROUTES"]:
        app.register_blueprint(tutorial)
    _drop_flasks_context_processors(app)
    # First: every later receiver of a change reads caches already made true.
    connect_invalidation(app)
    connect_receivers(app)
    instrumentation.count_inserts(app)
    _add_signal_bus(app)
    serving.init_app(app)
    return app


def _drop_flasks_context_processors(app: Quart) -> None:
    """Blueprints' copies of Flask's default template context processor, which is sync.

    Flask's Scaffold gives every Quart blueprint Flask's own `_default_template_ctx_processor`,
    which reads Flask's context variables: under Quart they are never set, so it returns
    nothing, yet being sync it sends every render of a blueprint's template through a thread
    (Quart's `ensure_async`). Quart's own async processor, on the app, supplies `g`,
    `request` and `session` to every template.
    """
    for name, functions in app.template_context_processors.items():
        if name is not None:
            functions[:] = [function for function in functions
                            if getattr(function, "__module__", None) != "flask.templating"]


def _add_fast_hits(app: Quart) -> None:
    """Current hits of cached views answered before Quart (`quart_app.cache.fast_hits`)."""
    if not app.config["CACHE_FAST_HITS"]:
        return

    def note_hit(rule: str) -> None:
        trace = request_id.current_trace()
        if trace is not None:
            trace.route = rule  # as Quart's routing would have noted it, for logs and metrics
        count_visit(app, rule)  # a fast hit is a visit too

    app.asgi_app = FastHits(  # type: ignore[method-assign]
        app, app.asgi_app, request_id=request_id.current_request_id, on_hit=note_hit)


def _add_signal_bus(app: Quart) -> None:
    if app.config["SIGNALS_BUS_URL"]:
        bus = SignalBus(app, ack_timeout=app.config["CACHE_LOCAL_ACK_TIMEOUT"],
                        password=app.config["CACHE_REDIS_PASSWORD"],
                        sentinel_password=app.config["CACHE_REDIS_SENTINEL_PASSWORD"])
        set_relay(app, bus.relay)
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
        info={"title": "quart_app", "version": "0.1.0"}, openapi_provider_class=Provider,
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

