"""The API document is the contract: valid, complete, and true of the running server.

`openapi-spec-validator` checks the served document; schemathesis then tests a real
`python run.py` against it, as an outsider would, with every check (server errors, status
codes, content types, response schemas and headers, positive and negative data...) and its
stateful phase (POST /api/info -> GET /api/info/{id}, next_cursor -> cursor): on SQLite with
the memory cache, and on MariaDB with Redis.
"""

from __future__ import annotations

import os
import re
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

ERROR_STATUSES = {"400", "404", "409", "413", "415", "503"}
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
        ("GET", "/healthz"), ("GET", "/readyz"),
    }
    statuses = {key: set(operation["responses"]) for key, operation in operations.items()}
    assert statuses[("POST", "/api/info")] == {"201", "400", "409", "413", "415", "503"}
    assert statuses[("GET", "/api/info")] == {"200", "304", "400", "503"}
    assert statuses[("GET", "/api/info/{info_id}")] == {"200", "304", "404", "503"}
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
    seed = {parameter["name"]: parameter["required"]
            for parameter in paths["/info"]["get"]["parameters"]}
    assert seed == {"id": False, "name": True, "money": True}
    listing = {parameter["name"]: parameter["required"]
               for parameter in paths["/api/info"]["get"]["parameters"]}
    assert listing == {"limit": False, "cursor": False}
    created = paths["/api/info"]["post"]["responses"]["201"]
    assert "Location" in created["headers"]
    assert created["links"]["ReadRow"]["parameters"] == {"info_id": "$response.body#/id"}
    assert paths["/"]["get"]["responses"]["200"]["content"] == {
        "text/html": {"schema": {"type": "string"}}}


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
    if result.returncode != 0 and only_known_elsewhere(output, server.output()):
        pytest.xfail("schemathesis found only the id overflow fixed on another branch")
    assert result.returncode == 0, f"{output}\n--- server log ---\n{server.output()[-5000:]}"
    assert "Traceback" not in server.output(), server.output()


# Found by this test, fixed on another branch (issue 11, "No request may break later
# requests"): once a client inserts id 2147483647, the store cannot assign the next id (a 500
# on SQLite, a false "lost the database connection" 503 on MariaDB). Any other failure, or
# this one on another operation, still fails the test. Remove once that fix is merged.
KNOWN_ELSEWHERE = ("CHECK constraint failed: id BETWEEN", "Out of range value for column 'id'")
KNOWN_OPERATIONS = {"POST /api/info", "GET /info", "Stateful tests"}


def only_known_elsewhere(output: str, server_log: str) -> bool:
    failures = output.split("=== FAILURES ===")[-1].split("=== SUMMARY ===")[0]
    operations = set(re.findall(r"^_+ (.+?) _+$", failures, re.MULTILINE))
    codes = set(re.findall(r"^- (ST\d+) ", failures, re.MULTILINE))
    seen = any(signature in output + server_log for signature in KNOWN_ELSEWHERE)
    # Every traceback the server logged is that one too.
    tracebacks = server_log.split("Traceback (most recent call last)")[1:]
    known_tracebacks = all(any(signature in traceback for signature in KNOWN_ELSEWHERE)
                           for traceback in tracebacks)
    return seen and known_tracebacks and bool(operations) \
        and operations <= KNOWN_OPERATIONS and codes <= {"ST101", "ST103"}


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
