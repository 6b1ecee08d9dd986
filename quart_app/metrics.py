"""The Prometheus metric families quart_app exports, in one place, importing nothing of ours.

Low layers (dispatch) count into them without importing the instrumentation that wires the
app, and `/metrics` reads them. Under `run.py --workers N` each family is written to
prometheus-client's per-process files and summed at scrape time (metrics_multiprocess.py);
otherwise it lives in this process's memory.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
SIGNAL_RECEIVERS = Counter(
    "quart_app_signal_receivers",
    "Receiver runs, by signal, receiver and outcome (ok, error, cut_off: a background "
    "receiver that timed out, cancelled)", ["signal", "receiver", "outcome"],
)
SIGNAL_RECEIVER_ERRORS = Counter(
    "quart_app_signal_receiver_errors", "Receivers that raised, by signal and receiver",
    ["signal", "receiver"],
)
SIGNAL_BACKGROUND_RUNNING = Gauge(
    "quart_app_signal_background_receivers_running",
    "Background receivers running now (holding one of the SIGNALS_MAX_BACKGROUND slots)",
    multiprocess_mode="livesum",
)
INFO_INSERTS = Counter("quart_app_info_inserts", "Rows inserted into info (committed)")

#: The pool states exported, as named by `InfoStore.stats()`.
POOL_STATES = ("idle", "in_use", "opening")
#: The signal bus's and the local tier's counts exported, as named by `SignalBus.stats()`.
BUS_EVENTS = ("published", "delivered", "dropped")
LOCAL_TIER_COUNTS = ("hits", "misses", "evictions_received", "evictions_announced",
                     "evictions_unconfirmed")


#: How a receiver's run ended, as counted in `quart_app_signal_receivers_total`.
OK, ERROR, CUT_OFF, CANCELLED = "ok", "error", "cut_off", "cancelled"


class ReceiverRuns:
    """One receiver's counts on one signal, its series looked up once.

    A receiver run costs one counter increment: prometheus-client's `labels()` takes a lock
    and builds a key on every call, so the series are kept here after the first.
    """

    __slots__ = ("_labels", "_series")

    def __init__(self, signal: str, receiver: str) -> None:
        self._labels = (signal, receiver)
        self._series: dict[str, Counter] = {}

    def count(self, outcome: str) -> None:
        series = self._series.get(outcome)
        if series is None:
            series = self._series[outcome] = SIGNAL_RECEIVERS.labels(*self._labels, outcome)
        series.inc()
        if outcome == ERROR:
            SIGNAL_RECEIVER_ERRORS.labels(*self._labels).inc()


_receiver_runs: dict[tuple[str, str], ReceiverRuns] = {}


def receiver_runs(signal: str, receiver: str) -> ReceiverRuns:
    """The counts of `receiver` on `signal` (one object per pair, for this process)."""
    runs = _receiver_runs.get((signal, receiver))
    if runs is None:
        runs = _receiver_runs[(signal, receiver)] = ReceiverRuns(signal, receiver)
    return runs
