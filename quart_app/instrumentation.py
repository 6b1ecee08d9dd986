"""Counting for `/metrics`, kept off the code it counts, and switched off by `METRICS = false`.

- HTTP: one ASGI middleware around the app times every request and counts it by method,
  URL rule and status, including those that end in an error page.
- The cache's per-view counts, the database pool's figures and the signal bus's (local
  tier included) are already kept by `CacheStats`, `InfoStore.stats()` and
  `SignalBus.stats()`; a task per worker copies them into the metric
  families every `SAMPLE_INTERVAL` seconds (and when the app stops, and before this
  worker answers a scrape), so counting them costs the hot path nothing. Another worker's
  figures can thus be up to `SAMPLE_INTERVAL` old in a scrape.
- Inserts: a receiver of `info_inserted`, in the process that made the insert.
- Receiver runs (and those that raise) are counted by the dispatcher (`metrics.ReceiverRuns`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope
from prometheus_client import Counter, Histogram
from quart import Quart, current_app

from . import metrics
from .bus import bus_of
from .db import InfoRow, current_store
from .dispatch import receiver
from .extensions import cache
from .request_id import current_trace
from .signals import info_inserted

logger = logging.getLogger("quart_app.metrics")

SAMPLE_INTERVAL = 1.0
#: The route label of a request no URL rule matched (a 404), so that random paths do not
#: each make a series of their own.
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

ASGIApp = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]


class HttpMetricsMiddleware:
    """Counts and times each HTTP request; the route comes from the request's trace."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Series looked up once: prometheus-client's labels() takes a lock on every call.
        self._counters: dict[tuple[str, str, int], Counter] = {}
        self._timers: dict[tuple[str, str], Histogram] = {}

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app fails before it answers

        async def send_noting_status(message: ASGISendEvent) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            elapsed = time.perf_counter() - started
            trace = current_trace()
            route = trace.route if trace is not None and trace.route else UNMATCHED
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self._counter(method, route, status).inc()
            self._timer(method, route).observe(elapsed)

    def _counter(self, method: str, route: str, status: int) -> Counter:
        key = (method, route, status)
        series = self._counters.get(key)
        if series is None:
            series = self._counters[key] = metrics.HTTP_REQUESTS.labels(method, route, status)
        return series

    def _timer(self, method: str, route: str) -> Histogram:
        key = (method, route)
        series = self._timers.get(key)
        if series is None:
            series = self._timers[key] = metrics.HTTP_REQUEST_DURATION.labels(method, route)
        return series


class Sampler:
    """Copies one app's cache counts and pool figures into the metric families."""

    def __init__(self, app: Quart) -> None:
        self.app = app
        self._counted: dict[tuple[str, ...], int] = {}
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        """Copy the figures now (in the app's context: the stores are found through it)."""
        with contextlib.suppress(RuntimeError):  # the cache is not open (yet, or any more)
            for view, counts in cache.view_stats().items():
                for outcome, count in counts.items():
                    self._count_up(metrics.CACHE_REQUESTS.labels(view, outcome),
                                   ("cache", view, outcome), count)
        with contextlib.suppress(RuntimeError):  # the database is not open
            figures = current_store().stats()
            for state in metrics.POOL_STATES:
                metrics.DB_POOL_CONNECTIONS.labels(state).set(float(figures.get(state, 0)))
            metrics.DB_POOL_WAITING.set(float(figures.get("waiting", 0)))
            self._count_up(metrics.DB_POOL_TIMEOUTS, ("pool", "timeouts"),
                           int(figures.get("timeouts", 0)))
        bus = bus_of(current_app)
        if bus is not None:
            self._sample_bus(bus.stats())

    def _sample_bus(self, figures: dict[str, Any]) -> None:
        metrics.SIGNAL_BUS_CONNECTED.set(1 if figures["connected"] else 0)
        for event in metrics.BUS_EVENTS:
            self._count_up(metrics.SIGNAL_BUS_MESSAGES.labels(event), ("bus", event),
                           figures[event])
        tier = figures.get("local_tier")
        if tier is not None:
            for event in metrics.LOCAL_TIER_COUNTS:
                self._count_up(metrics.LOCAL_TIER_EVENTS.labels(event), ("tier", event),
                               tier[event])

    def _count_up(self, counter: Counter, key: tuple[str, ...], total: int) -> None:
        """Add to `counter` what `total`, a running count kept elsewhere, gained since."""
        before = self._counted.get(key, 0)
        if total > before:
            counter.inc(total - before)
            self._counted[key] = total

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.sample()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL)
            try:
                async with self.app.app_context():
                    self.sample()
            except Exception:
                logger.exception("metrics: sampling the cache, pool and bus figures failed")


def sampler_for(app: Quart) -> Sampler | None:
    sampler: Sampler | None = app.extensions.get("metrics_sampler")
    return sampler


def init_app(app: Quart) -> None:
    """Count `app`'s requests, cache calls and pool figures, unless `METRICS = false`.

    Call it before `request_id.init_app`: the middleware must sit inside the request-id
    one, so that the request's trace (and its route) is still there when it counts.
    """
    if not app.config["METRICS"]:
        return
    app.asgi_app = HttpMetricsMiddleware(app.asgi_app)  # type: ignore[method-assign]
    sampler = app.extensions["metrics_sampler"] = Sampler(app)
    # Registered before the cache and the database are: the last sample is taken before
    # they close.
    app.before_serving(sampler.start)
    app.after_serving(sampler.stop)


def count_inserts(app: Quart) -> None:
    """Count inserts; connected after the shipped receivers, so the cache is made true first."""
    if not app.config["METRICS"]:
        return

    @receiver(info_inserted, app, dispatch_uid="metrics.info_inserted", origin_only=True)
    async def count_insert(sender: Quart, row: InfoRow, **extra: Any) -> None:
        metrics.INFO_INSERTS.inc()
