"""The API document is the contract: valid, complete, and true of the running server.

`openapi-spec-validator` checks the served document; schemathesis then tests a real
`python run.py` against it, as an outsider would, with every check (server errors, status
codes, content types, response schemas and headers, positive and negative data...) and its
stateful phase (POST /api/info -> GET /api/info/{id}, next_cursor -> cursor): on SQLite with
the memory cache, and on MariaDB with Redis.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate
from quart.testing import QuartClient

from .server_process import REPO, ServerProcess
from .services import MYSQL_URL, REDIS_URL, forget_redis_prefix, require_service
from .support import memory_sqlite_config, reset_mysql_table

ERROR_STATUSES = {"400", "404", "409", "412", "413", "415", "503"}
#: Examples per operation and phase: about 700 requests per backend, 30 to 40 s.
EXAMPLES = int(os.environ.get("QUART_APP_TEST_SCHEMATHESIS_EXAMPLES", "40"))


@pytest.fixture
def app_config(tmp_path: Path) -> dict[str, Any]:
    return memory_sqlite_config(tmp_path)


@pytest.fixture
async def document(client: QuartClient) -> dict[str, Any]:
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = await response.get_json()
    return spec


async def test_the_served_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)  # raises with the first problem


async def test_every_operation_documents_its_answers(document: dict[str, Any]) -> None:
    operations = {(method.upper(), path): operation
                  for path, methods in document["paths"].items()
                  for method, operation in methods.items()}
    assert set(operations) == {
        ("GET", "/"), ("GET", "/get"), ("GET", "/{name}"), ("GET", "/login"),
        ("POST", "/login"), ("GET", "/info"), ("POST", "/api/info"), ("GET", "/api/info"),
        ("GET", "/api/info/{info_id}"), ("GET", "/api/stats"), ("GET", "/api/stats/visits"),
        ("GET", "/healthz"), ("GET", "/readyz"), ("PUT", "/api/info/{info_id}"),
        ("PATCH", "/api/info/{info_id}"), ("DELETE", "/api/info/{info_id}"),
        ("POST", "/api/info/bulk"), ("GET", "/metrics"),
    }
    statuses = {key: set(operation["responses"]) for key, operation in operations.items()}
    assert statuses[("POST", "/api/info")] == {"201", "400", "409", "413", "415", "503"}
    assert statuses[("GET", "/api/info")] == {"200", "304", "400", "503"}
    assert statuses[("GET", "/api/info/{info_id}")] == {"200", "304", "404", "503"}
    for method in ("PUT", "PATCH"):
        assert statuses[(method, "/api/info/{info_id}")] == {
            "200", "400", "404", "412", "413", "415", "503"}
    assert statuses[("DELETE", "/api/info/{info_id}")] == {"204", "404", "412", "503"}
    assert statuses[("POST", "/api/info/bulk")] == {"200", "400", "413", "415", "503"}
    assert statuses[("GET", "/info")] == {"200", "400", "409", "503"}
    assert statuses[("POST", "/login")] == {"302", "400", "413", "415"}
    assert statuses[("GET", "/get")] == {"200", "404", "503"}
    assert statuses[("GET", "/readyz")] == {"200", "503"}
    for key, operation in operations.items():
        assert operation["responses"], key
        for status, response in operation["responses"].items():
            if status in ERROR_STATUSES and key != ("GET", "/readyz"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (key, status)
            if status == "503":
                assert "Retry-After" in response["headers"], key
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "message"]
    assert set(error["properties"]["fields"]["items"]["required"]) == {"field", "reason"}


async def test_bodies_parameters_and_links_are_documented(document: dict[str, Any]) -> None:
    paths = document["paths"]
    for path in ("/api/info", "/login"):
        body = paths[path]["post"]["requestBody"]
        assert body["required"] is True
        assert set(body["content"]) == {"application/json", "application/x-www-form-urlencoded"}
    insert = paths["/api/info"]["post"]["requestBody"]["content"]
    assert insert["application/json"]["schema"]["required"] == ["name", "money"]
    assert insert["application/x-www-form-urlencoded"]["schema"]["properties"]["id"]["type"] \
        == "integer"  # a form leaves it out rather than say null
    tutorial = {parameter["name"]: parameter["required"]
            for parameter in paths["/info"]["get"]["parameters"]}
    assert tutorial == {"id": False, "name": True, "money": True}
    listing = {parameter["name"]: parameter["required"]
               for parameter in paths["/api/info"]["get"]["parameters"]}
    assert listing == {"limit": False, "cursor": False}
    created = paths["/api/info"]["post"]["responses"]["201"]
    assert "Location" in created["headers"]
    assert created["links"]["ReadRow"]["parameters"] == {"info_id": "$response.body#/id"}
    assert paths["/"]["get"]["responses"]["200"]["content"] == {
        "text/html": {"schema": {"type": "string"}}}


async def test_bulk_loads_document_ndjson_in_and_out(document: dict[str, Any]) -> None:
    bulk = document["paths"]["/api/info/bulk"]["post"]
    body = bulk["requestBody"]["content"]
    assert set(body) == {"application/json", "application/x-ndjson"}
    assert body["application/json"]["schema"]["type"] == "array"
    assert body["application/x-ndjson"]["schema"]["type"] == "string"
    assert "100000 rows" in body["application/x-ndjson"]["schema"]["description"]
    answered = bulk["responses"]["200"]["content"]
    assert set(answered) == {"application/json", "application/x-ndjson"}
    line = answered["application/x-ndjson"]["x-item-schema"]["$ref"]
    assert line.removeprefix("#/components/schemas/") in document["components"]["schemas"]
    assert "BULK_MAX_NDJSON_ROWS" in bulk["responses"]["413"]["description"]


# --- schemathesis, against a real server ----------------------------------------------------


def run_schemathesis(server: ServerProcess, tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "schemathesis.cli",
        "--config-file", str(REPO / "tests" / "schemathesis.toml"), "--no-color",
        "run", f"{server.base_url}/api/openapi.json",
        "--checks", "all", "--max-examples", str(EXAMPLES), "--workers", "1",
        "--generation-database", "none", "--request-timeout", "10",
        "--report", "junit", "--report-dir", str(tmp_path / "schemathesis"),
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            check=False)
    output = result.stdout + result.stderr
    assert "Stateful" in output and "API Links" in output, output
    assert result.returncode == 0, f"{output}\n--- server log ---\n{server.output()[-5000:]}"
    assert "Traceback" not in server.output(), server.output()


def test_schemathesis_on_sqlite_and_the_memory_cache(tmp_path: Path) -> None:
    env = {"QUART_DATABASE_URL": f"sqlite:///{tmp_path / 'st.sqlite3'}",
           "QUART_CACHE_TYPE": "SimpleCache", "QUART_LOG_LEVEL": "WARNING"}
    with ServerProcess(env=env, log_dir=tmp_path) as server:
        run_schemathesis(server, tmp_path)


def test_schemathesis_on_mariadb_and_redis(tmp_path: Path) -> None:
    mysql_url = require_service("MariaDB", MYSQL_URL)
    redis_url = require_service("Redis", REDIS_URL)
    reset_mysql_table(mysql_url)
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    env = {"QUART_DATABASE_URL": mysql_url, "QUART_CACHE_TYPE": "RedisCache",
           "QUART_CACHE_REDIS_URL": redis_url, "QUART_CACHE_KEY_PREFIX": prefix,
           "QUART_LOG_LEVEL": "WARNING"}
    try:
        with ServerProcess(env=env, log_dir=tmp_path) as server:
            run_schemathesis(server, tmp_path)
    finally:
        forget_redis_prefix(redis_url, prefix)
        reset_mysql_table(mysql_url)
