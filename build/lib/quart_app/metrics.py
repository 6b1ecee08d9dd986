"""The Prometheus metric families quart_app exports, in one place, importing nothing of ours.

Low layers (dispatch) count into them without importing the instrumentation that wires the
app, and `/metrics` reads them. Under `run.py --workers N` each family is written to
prometheus-client's per-process files and summed at scrape time (metrics_multiprocess.py);
otherwise it lives in this process's memory.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from quart import current_app, has_app_context

HTTP_REQUESTS = Counter(
    "quart_app_http_requests", "HTTP requests answered, by method, URL rule and status",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "quart_app_http_request_duration_seconds",
    "Seconds from a request's arrival to the end of its response, by method and URL rule",
    ["method", "route"],
)
CACHE_REQUESTS = Counter(
    "quart_app_cache_requests",
    "Calls of cached views and memoized functions, by function and outcome "
    "(hit, miss, stale, error, bypass)",
    ["view", "outcome"],
)
DB_POOL_CONNECTIONS = Gauge(
    "quart_app_db_pool_connections", "Database connections, by state (idle, in_use, opening)",
    ["state"], multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "quart_app_db_pool_waiting", "Requests waiting for a database connection",
    multiprocess_mode="livesum",
)
DB_POOL_TIMEOUTS = Counter(
    "quart_app_db_pool_timeouts", "Checkouts that waited past acquire_timeout (answered 503)",
)
SIGNAL_BUS_CONNECTED = Gauge(
    "quart_app_signal_bus_connected", "Workers subscribed to the signal bus",
    multiprocess_mode="livesum",
)
SIGNAL_BUS_MESSAGES = Counter(
    "quart_app_signal_bus_messages",
    "Signal bus messages: published, delivered (from other processes), dropped (malformed "
    "or over the queue limit)", ["event"],
)
LOCAL_TIER_EVENTS = Counter(
    "quart_app_cache_local_tier_events",
    "The local tier (CACHE_LOCAL): hits, misses, evictions received, announced and "
    "unconfirmed", ["event"],
)
SIGNAL_RECEIVER_ERRORS = Counter(
    "quart_app_signal_receiver_errors", "Receivers that raised, by signal and receiver",
    ["signal", "receiver"],
)
INFO_INSERTS = Counter("quart_app_info_inserts", "Rows inserted into info (committed)")

#: The pool states exported, as named by `InfoStore.stats()`.
POOL_STATES = ("idle", "in_use", "opening")
#: The signal bus's and the local tier's counts exported, as named by `SignalBus.stats()`.
BUS_EVENTS = ("published", "delivered", "dropped")
LOCAL_TIER_COUNTS = ("hits", "misses", "evictions_received", "evictions_announced",
                     "evictions_unconfirmed")


def count_receiver_error(signal: str, receiver: str) -> None:
    """Count a receiver that raised, unless the app has `METRICS = false`."""
    if has_app_context() and current_app.config.get("METRICS", True):
        SIGNAL_RECEIVER_ERRORS.labels(signal, receiver).inc()
