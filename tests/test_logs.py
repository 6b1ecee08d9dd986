"""Every log line of a request names it: request id and route, in text and in JSON."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from quart_app import create_app
from quart_app.logs import make_formatter

from .server_process import ServerProcess


async def test_a_requests_log_lines_carry_its_id_and_route_background_ones_too(
    app_config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app({**app_config, "RECEIVERS": {"notify": True}, "NOTIFY_DELAY": 0})
    async with app.test_app():
        response = await app.test_client().post(
            "/api/info", json={"name": "redis", "money": "588"},
            headers={"X-Request-ID": "req-logs-1"},
        )
        assert response.status_code == 201
        await asyncio.gather(*app.background_tasks)
    audit = [r for r in caplog.records if r.name == "quart_app.audit"]
    notify = [r for r in caplog.records if r.name == "quart_app.notify"]
    assert len(audit) == 1 and len(notify) == 1
    for record in (audit[0], notify[0]):
        assert record.request_id == "req-logs-1"  # type: ignore[attr-defined]
        assert record.route == "/api/info"  # type: ignore[attr-defined]
        assert "[req-logs-1]" in make_formatter("text").format(record)
        line = json.loads(make_formatter("json").format(record))
        assert line["request_id"] == "req-logs-1" and line["route"] == "/api/info"
        assert line["logger"] == record.name and line["level"] == "INFO"
        assert line["message"] == record.getMessage() and line["time"]


def test_json_lines_name_the_exception() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.getLogger("quart_app.test").makeRecord(
            "quart_app.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info(),
        )
    line = json.loads(make_formatter("json").format(record))
    assert line["request_id"] == "-" and "RuntimeError: boom" in line["exception"]


def test_log_format_json_and_the_access_log_over_a_real_server(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(
        'LOG_FORMAT = "json"\nNOTIFY_DELAY = 0\n'
        f'DATABASE_URL = "sqlite:///{tmp_path / "logs.sqlite3"}"\n'
        '[RECEIVERS]\nnotify = true\n[hypercorn]\naccesslog = "-"\n'
    )
    env = {"QUART_APP_SETTINGS": str(settings)}
    with ServerProcess(env=env, log_dir=tmp_path) as server:
        rendered = httpx.get(server.base_url + "/alice", headers={"X-Request-ID": "proc-1"})
        inserted = httpx.post(server.base_url + "/api/info", json={"name": "a", "money": "1"},
                              headers={"X-Request-ID": "proc-2"})
        assert rendered.status_code == 200 and inserted.status_code == 201
        assert server.stop() == 0  # a graceful stop waits for the background SMS
    lines = server.output().splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    by_logger = {(r["logger"], r["request_id"]): r for r in records}
    assert by_logger["quart_app.render", "proc-1"]["route"] == "/<name>"
    assert by_logger["quart_app.audit", "proc-2"]["route"] == "/api/info"
    assert by_logger["quart_app.notify", "proc-2"]["route"] == "/api/info"
    access = [line for line in lines if '"GET /alice' in line or '"POST /api/info' in line]
    assert len(access) == 2, server.output()
    assert access[0].endswith(" proc-1") and access[1].endswith(" proc-2")
