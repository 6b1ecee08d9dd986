"""bench's bare Quart peer: the tutorial's work on plain Quart, to show what quart_app adds.

The same routes the scenarios drive (`GET /` and the cached `GET /get`, the template
`GET /<name>`, the cached list `GET /api/info`, inserts by `GET /info?...` and
`POST /api/info`), on quart_app's own cache client and store with the same settings (the
`QUART_CACHE_TYPE`, `QUART_CACHE_REDIS_URL` and `QUART_DATABASE_URL` the harness gives
quart_app), and nothing else: no validation models, no signals or receivers, no metrics, no
request ids, no view-caching decorator (the list is cached by hand under a generation key
that every insert moves on), no OpenAPI. Served by run.py (`--app bench.quart_bare:app`), so
it has run.py's settings and worker model on either server.
"""

from __future__ import annotations

import json
import os
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from quart import Quart, render_template, request

from quart_app.cache import MISSING, CacheClient, CacheSettings
from quart_app.db.factory import create_store
from quart_app.db.pool_settings import PoolSettings
from quart_app.db.store import InfoStore

REPO = Path(__file__).resolve().parent.parent
app = Quart(__name__, template_folder=str(REPO / "quart_app" / "templates"))

POOL = PoolSettings(recycle=3600)  # settings.toml's [DATABASE_POOL]
LIST_GENERATION = "bare:list-generation"
Answer = tuple[str, int]


class Resources:
    cache: CacheClient
    store: InfoStore


res = Resources()


@app.before_serving
async def open_resources() -> None:
    cache_type = os.environ.get("QUART_CACHE_TYPE", "SimpleCache")
    res.cache = CacheClient(CacheSettings(
        cache_type=cache_type,
        redis_url=os.environ.get("QUART_CACHE_REDIS_URL", "redis://127.0.0.1:6379/0")))
    res.store = create_store(os.environ.get("QUART_DATABASE_URL", "sqlite:///bare.sqlite3"),
                             POOL, base_dir=REPO)
    await res.store.open()


@app.after_serving
async def close_resources() -> None:
    await res.cache.close()
    await res.store.close()


@app.get("/healthz")
async def healthz() -> str:
    return "ok"


@app.get("/")
async def index() -> str:
    await res.cache.set("name", "8888")
    return "index"


@app.get("/get")
async def get() -> Answer:
    value = await res.cache.get("name", MISSING)
    return ("nothing cached", 404) if value is MISSING else (str(value), 200)


async def insert(fields: Any) -> Answer | dict[str, Any]:
    try:
        row = await res.store.insert(int(fields["id"]), str(fields["name"]),
                                     Decimal(str(fields["money"])))
    except (KeyError, ValueError, TypeError, InvalidOperation) as error:
        return f"bad input: {error}", 400
    await res.cache.set(LIST_GENERATION, time.time_ns())
    return row.to_json()


@app.get("/info")
async def info() -> Answer:
    outcome = await insert(request.args)
    return outcome if isinstance(outcome, tuple) else ("创建info数据成功!!!", 200)


@app.post("/api/info")
async def create_info() -> Answer | tuple[dict[str, Any], int]:
    outcome = await insert(await request.get_json(force=True, silent=True) or {})
    return outcome if isinstance(outcome, tuple) else (outcome, 201)


@app.get("/api/info")
async def list_info() -> tuple[str, int, dict[str, str]]:
    generation = await res.cache.get(LIST_GENERATION, 0)
    key = f"bare:list:{generation}:{request.query_string.decode()}"
    body = await res.cache.get(key)
    if body is None:
        rows, next_cursor = await res.store.list_page(int(request.args.get("limit", 20)),
                                                      request.args.get("cursor"))
        body = json.dumps({"items": [row.to_json() for row in rows],
                           "next_cursor": next_cursor}, separators=(",", ":"))
        await res.cache.set(key, body)
    return body, 200, {"Content-Type": "application/json"}


@app.get("/<name>")
async def hello(name: str) -> str:
    return await render_template("index.html", name=name)
