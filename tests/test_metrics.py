"""GET /metrics: requests by URL rule, cache outcomes, pool, inserts, receiver errors."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from quart import Quart
from quart.testing import QuartClient

from quart_app import create_app
from quart_app.dispatch import GuardedNamespace, GuardedSignal, receiver, send
from quart_app.metrics_multiprocess import ENV_VAR, exposition, prepare_directory
from quart_app.signals import info_inserted

from .server_process import ServerProcess
from .support import memory_sqlite_config, wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(client: QuartClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    return parse(await response.get_data(as_text=True))


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


RUNS = "quart_app_signal_receivers_total"
ERRORS = "quart_app_signal_receiver_errors_total"
RUNNING = "quart_app_signal_background_receivers_running"


def this_process() -> Samples:
    """This process's metrics, as its `/metrics` would show them (no app needed)."""
    return parse(exposition().decode())


def runs(signal: GuardedSignal, function: Any) -> dict[str, float]:
    """`function`'s counted runs on `signal`, by outcome (outcomes never seen left out)."""
    name = f"{function.__module__}.{function.__qualname__}"
    counted: dict[str, float] = {}
    for (metric, labels), count in this_process().items():
        found = dict(labels)
        if metric == RUNS and found["signal"] == signal.name and found["receiver"] == name:
            counted[found["outcome"]] = count
    return counted


def fresh_signal() -> GuardedSignal:
    """A signal of its own per test: its counts start from nothing."""
    return GuardedNamespace().signal(f"test-metrics-{uuid.uuid4().hex[:8]}")


async def test_requests_are_counted_by_url_rule_and_status(client: QuartClient) -> None:
    before = await scrape(client)
    for id in (5, 6, 7):
        assert (await client.get(f"/api/info/{id}")).status_code == 404
    await client.get("/no/such/path")
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    rule = {"method": "GET", "route": "/api/info/<int:info_id>"}
    assert delta("quart_app_http_requests_total", **rule, status="404") == 3
    assert delta("quart_app_http_request_duration_seconds_count", **rule) == 3
    assert delta("quart_app_http_request_duration_seconds_bucket", **rule, le="+Inf") == 3
    assert delta("quart_app_http_requests_total", method="GET", route="unmatched",
                 status="404") == 1


async def test_cache_outcomes_pool_and_inserts_are_exported(client: QuartClient) -> None:
    before = await scrape(client)
    await client.get("/api/info")
    await client.get("/api/info")
    assert (await client.post("/api/info", json={"name": "m", "money": "1"})).status_code == 201
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    views = {dict(labels)["view"] for name, labels in after
             if name == "quart_app_cache_requests_total"}
    list_view = next(view for view in views if view.endswith("list_info"))
    assert delta("quart_app_cache_requests_total", view=list_view, outcome="miss") == 1
    assert delta("quart_app_cache_requests_total", view=list_view, outcome="hit") == 1
    assert delta("quart_app_info_inserts_total") == 1
    states = {dict(labels)["state"] for name, labels in after
              if name == "quart_app_db_pool_connections"}
    assert states == {"idle", "in_use", "opening"}


async def test_a_failing_receiver_is_counted(app_config: dict[str, Any]) -> None:
    app = create_app(app_config)

    @receiver(info_inserted, app, dispatch_uid="test.fails")
    async def fails(sender: Quart, **extra: Any) -> None:
        raise RuntimeError("receiver bug")

    async with app.test_app():
        client = app.test_client()
        labels = {"signal": info_inserted.name, "receiver": f"{__name__}.{fails.__qualname__}"}
        before = value(await scrape(client), "quart_app_signal_receiver_errors_total", **labels)
        assert (await client.post("/api/info", json={"name": "e", "money": "1"})).status_code == 201
        after = value(await scrape(client), "quart_app_signal_receiver_errors_total", **labels)
    assert after - before == 1


async def test_every_receiver_run_is_counted_by_outcome(tmp_path: Path) -> None:
    app = create_app(memory_sqlite_config(tmp_path))
    signal = fresh_signal()

    @receiver(signal, app)
    async def works(sender: Quart, **extra: Any) -> None: ...

    @receiver(signal, app)
    async def fails(sender: Quart, **extra: Any) -> None:
        raise RuntimeError("receiver bug")

    # Connected with plain blinker, as the tutorial does: run guarded all the same.
    def plain_works(sender: Quart, **extra: Any) -> None: ...

    async def plain_fails(sender: Quart, **extra: Any) -> None:
        raise RuntimeError("receiver bug")

    signal.connect(plain_works, sender=app)
    signal.connect(plain_fails, sender=app)
    async with app.test_app():
        await send(signal, app)
        await send(signal, app)
    assert runs(signal, works) == {"ok": 2}
    assert runs(signal, fails) == {"error": 2}
    assert runs(signal, plain_works) == {"ok": 2}
    assert runs(signal, plain_fails) == {"error": 2}
    samples = this_process()
    for failing in (fails, plain_fails):
        name = f"{__name__}.{failing.__qualname__}"
        assert value(samples, ERRORS, signal=signal.name, receiver=name) == 2
    counted = {dict(labels)["receiver"] for metric, labels in samples
               if metric == RUNS and dict(labels)["signal"] == signal.name}
    assert len(counted) == 4  # the dispatcher's own fan-out is not a receiver of yours


async def test_background_receivers_running_and_cut_off_are_counted(tmp_path: Path) -> None:
    app = create_app({**memory_sqlite_config(tmp_path), "SIGNALS_BACKGROUND_TIMEOUT": 0.5})
    signal = fresh_signal()
    started, release = asyncio.Event(), asyncio.Event()

    @receiver(signal, app, background=True)
    async def waits(sender: Quart, **extra: Any) -> None:
        started.set()
        await release.wait()

    stuck_signal = fresh_signal()

    @receiver(stuck_signal, app, background=True)
    async def stuck(sender: Quart, **extra: Any) -> None:
        await asyncio.sleep(60)

    async with app.test_app():
        idle = value(this_process(), RUNNING)
        await send(signal, app)
        await asyncio.wait_for(started.wait(), 5)
        assert value(this_process(), RUNNING) == idle + 1
        release.set()
        await wait_until(lambda: runs(signal, waits) == {"ok": 1})
        await send(stuck_signal, app)
        await wait_until(lambda: runs(stuck_signal, stuck) == {"cut_off": 1})
        assert value(this_process(), RUNNING) == idle


async def test_receivers_cancelled_are_counted(tmp_path: Path) -> None:
    app = create_app({**memory_sqlite_config(tmp_path), "BACKGROUND_TASK_SHUTDOWN_TIMEOUT": 0.2})
    signal = fresh_signal()
    started = asyncio.Event()

    @receiver(signal, app, background=True)
    async def endless(sender: Quart, **extra: Any) -> None:
        await asyncio.sleep(60)

    inline_signal = fresh_signal()

    @receiver(inline_signal, app)
    async def inline(sender: Quart, **extra: Any) -> None:
        started.set()
        await asyncio.sleep(60)

    async with app.test_app():
        await send(signal, app)
        sending = asyncio.create_task(send(inline_signal, app))  # e.g. its request was dropped
        await asyncio.wait_for(started.wait(), 5)
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending
    # The shutdown drain gave up on it after BACKGROUND_TASK_SHUTDOWN_TIMEOUT.
    assert runs(signal, endless) == {"cancelled": 1}
    assert runs(inline_signal, inline) == {"cancelled": 1}


async def test_metrics_false_counts_no_receiver_run(tmp_path: Path) -> None:
    app = create_app({**memory_sqlite_config(tmp_path), "METRICS": False})
    signal = fresh_signal()
    done = asyncio.Event()

    @receiver(signal, app)
    async def inline(sender: Quart, **extra: Any) -> None: ...

    @receiver(signal, app, background=True)
    async def later(sender: Quart, **extra: Any) -> None:
        done.set()

    async def plain(sender: Quart, **extra: Any) -> None:
        raise RuntimeError("receiver bug")

    signal.connect(plain, sender=app)
    async with app.test_app():
        await send(signal, app)
        await asyncio.wait_for(done.wait(), 5)
    assert not [labels for metric, labels in this_process()
                if metric in (RUNS, ERRORS) and dict(labels)["signal"] == signal.name]


async def test_metrics_false_serves_no_metrics_and_counts_nothing(
    app_config: dict[str, Any]
) -> None:
    counted = create_app(app_config)
    quiet = create_app({**app_config, "METRICS": False})
    async with counted.test_app(), quiet.test_app():
        before = await scrape(counted.test_client())
        await quiet.test_client().get("/healthz")
        after = await scrape(counted.test_client())
        quiet_scrape = await quiet.test_client().get("/metrics")
        page = await quiet.test_client().get("/metrics-dashboard")
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    assert value(after, "quart_app_http_requests_total", **labels) == value(
        before, "quart_app_http_requests_total", **labels)
    # A 404, not the tutorial's catch-all /<name> page greeting "metrics".
    assert quiet_scrape.status_code == 404
    assert (await quiet_scrape.get_json())["error"] == "not_found"
    assert page.status_code == 200  # the catch-all still answers every other name


async def test_the_signal_bus_is_exported(tmp_path: Path, redis_url: str) -> None:
    app = create_app({
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bus.sqlite3'}",
        "SIGNALS_BUS_URL": redis_url, "SIGNALS_BUS_CHANNEL": f"test-metrics-{uuid.uuid4().hex}",
    })
    async with app.test_app():
        await wait_until(lambda: app.extensions["signal_bus"].connected)
        client = app.test_client()
        before = await scrape(client)
        assert (await client.post("/api/info", json={"name": "b", "money": "1"})).status_code == 201
        after = await scrape(client)
    assert value(after, "quart_app_signal_bus_connected") == 1
    published = "quart_app_signal_bus_messages_total"
    assert value(after, published, event="published") - value(
        before, published, event="published") == 1


def test_prepare_directory_empties_the_named_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "counter_4242.db").write_bytes(b"counts of an earlier run")
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert prepare_directory() == tmp_path
    assert list(tmp_path.iterdir()) == []


def test_the_gauges_of_exited_processes_are_dropped_at_a_scrape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exited = subprocess.Popen(["true"])
    exited.wait()
    gone = tmp_path / f"gauge_livesum_{exited.pid}.db"
    alive = tmp_path / f"gauge_livesum_{os.getpid()}.db"
    for path in (gone, alive):
        MmapedDict(str(path)).close()  # an empty gauge file, as prometheus-client writes it
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    exposition()
    assert not gone.exists()
    assert alive.exists()


def worker_file(directory: Path, pid: int, count: float) -> None:
    """A worker's counter file, as prometheus-client writes it, holding one count."""
    counts = MmapedDict(str(directory / f"counter_{pid}.db"))
    name = "quart_app_probe_total"
    counts.write_value(mmap_key(name, name, [], [], "a probe"), count, 0.0)
    counts.close()


async def test_a_file_a_worker_has_only_just_created_is_left_out(
    client: QuartClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # prometheus-client opens a worker's file, then sizes it: in between it is empty.
    worker_file(tmp_path, 4001, 3)
    (tmp_path / "counter_4002.db").touch()
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert value(await scrape(client), "quart_app_probe_total") == 3


async def test_a_file_no_scrape_can_read_is_a_503_not_a_500(
    client: QuartClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker_file(tmp_path, 4001, 3)
    broken = tmp_path / "counter_4002.db"
    broken.write_bytes((1 << 20).to_bytes(4, "little") + bytes(12))  # says more than it holds
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    response = await client.get("/metrics")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert (await response.get_json())["error"] == "metrics_unreadable"


def requests_per_worker(metrics_dir: Path, route: str) -> list[float]:
    """Each worker's own count of GET `route`, read from its file alone."""
    counts = []
    for path in metrics_dir.glob("counter_*.db"):
        with tempfile.TemporaryDirectory() as alone:
            shutil.copy(path, alone)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, alone)  # type: ignore[no-untyped-call]
            counts.append(value(parse(generate_latest(registry).decode()),
                                "quart_app_http_requests_total", method="GET", route=route,
                                status="200"))
    return counts


@pytest.mark.parametrize("named", [True, False], ids=["named-directory", "own-directory"])
def test_two_workers_are_scraped_as_one(
    tmp_path: Path, server_flags: tuple[str, ...], named: bool
) -> None:
    env = {"QUART_DATABASE_URL": f"sqlite:///{tmp_path / 'metrics.sqlite3'}"}
    temp = tmp_path / "tmp"
    temp.mkdir()
    if named:
        metrics_dir = tmp_path / "metrics"  # one named by the operator, who creates it
        metrics_dir.mkdir()
        env[ENV_VAR] = str(metrics_dir)
    else:
        # run.py makes its own, named only once prometheus-client is imported in run.py's
        # process: the workers must start afresh to count into it.
        env["TMPDIR"] = str(temp)
    requests = 0
    # No keep-alive: each request is a new connection, and the kernel picks its worker.
    http = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))
    with http, ServerProcess(*server_flags, "--workers", "2", env=env,
                             log_dir=tmp_path) as server:
        if not named:
            [metrics_dir] = temp.glob("quart_app-metrics-*")
        # Rounds until both workers have served: one may still be starting when the other
        # answers first (granian's spawned workers take a second or two).
        deadline = time.monotonic() + 20
        served: list[float] = []
        while len(served) < 2 and time.monotonic() < deadline:
            for _ in range(20):
                assert http.get(server.base_url + "/alice").status_code == 200
            requests += 20
            # A request is counted just after its answer is sent: the last may lag a little.
            settle = time.monotonic() + 5
            while (sum(served := [n for n in requests_per_worker(metrics_dir, "/<name>") if n])
                   < requests and time.monotonic() < settle):
                time.sleep(0.05)
        assert len(served) == 2, "both workers should have served and counted requests"
        assert sum(served) == requests
        for _ in range(6):  # whichever worker answers, it reports both workers' counts
            scraped = parse(http.get(server.base_url + "/metrics").text)
            assert value(scraped, "quart_app_http_requests_total", method="GET",
                         route="/<name>", status="200") == requests
        assert server.stop() == 0
    if named:
        # Stopped workers' gauges were dropped; their counters stay counted.
        assert not list(metrics_dir.glob("gauge_livesum_*.db"))
    else:
        assert not metrics_dir.exists()  # removed when run.py exits
