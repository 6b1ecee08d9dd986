"""GET /metrics: requests by URL rule, cache outcomes, pool, inserts, receiver errors."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from quart import Quart
from quart.testing import QuartClient

from quart_app import create_app
from quart_app.dispatch import receiver
from quart_app.metrics_multiprocess import ENV_VAR, prepare_directory
from quart_app.signals import info_inserted

from .server_process import ServerProcess
from .support import wait_until

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
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    assert value(after, "quart_app_http_requests_total", **labels) == value(
        before, "quart_app_http_requests_total", **labels)
    assert "quart_app_http_requests_total" not in await quiet_scrape.get_data(as_text=True)


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


def test_two_workers_are_scraped_as_one(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"  # one named by the operator, who creates it
    metrics_dir.mkdir()
    env = {"QUART_DATABASE_URL": f"sqlite:///{tmp_path / 'metrics.sqlite3'}",
           ENV_VAR: str(metrics_dir)}
    requests = 40
    # No keep-alive: each request is a new connection, and the kernel picks its worker.
    http = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))
    with http, ServerProcess("--workers", "2", env=env, log_dir=tmp_path) as server:
        for _ in range(requests):
            assert http.get(server.base_url + "/alice").status_code == 200
        served_by = {path.stem.split("_")[-1] for path in metrics_dir.glob("counter_*.db")}
        assert len(served_by) == 2, "both workers should have counted requests"
        for _ in range(6):  # whichever worker answers, it reports both workers' counts
            scraped = parse(http.get(server.base_url + "/metrics").text)
            assert value(scraped, "quart_app_http_requests_total", method="GET",
                         route="/<name>", status="200") == requests
        assert server.stop() == 0
    # Stopped workers' gauges were dropped; their counters stay counted.
    assert not list(metrics_dir.glob("gauge_livesum_*.db"))
