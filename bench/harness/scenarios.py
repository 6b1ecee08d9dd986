"""The scenarios: what wrk drives, with which settings, and the probes each peer must pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .peers import Settings

SLOW_NOTIFY_MS = 200


@dataclass(frozen=True)
class Probe:
    """One request that must work on a peer before a scenario is measured on it.

    `{id}` in path or body becomes a fresh insert id; with `inserts`, that row must then be
    in the table (a catch-all `/<name>` route answering 200 to `/info` is not an insert).
    """

    method: str
    path: str
    body: str | None = None
    status: tuple[int, ...] = (200,)
    contains: str = ""  # the body must contain this
    inserts: bool = False


GET_PROBE = Probe("GET", "/get", contains="8888")
LIST_PROBE = Probe("GET", "/api/info", contains='"id"')
URL_INSERT_PROBE = Probe("GET", "/info?id={id}&name=probe&money=1.50", inserts=True)
POST_INSERT_PROBE = Probe(
    "POST", "/api/info", '{"id": {id}, "name": "probe", "money": "1.50"}', (201,), inserts=True
)
# The seed's row 1 given its own values (nothing changes): the update route must exist.
UPDATE_PROBE = Probe("PUT", "/api/info/1", '{"name": "seed1", "money": "10.25"}', (200,),
                     contains='"name":"seed1"')
BULK_PROBE = Probe(
    "POST", "/api/info/bulk", '[{"id": {id}, "name": "probe", "money": "1.50"}]', (200,),
    contains='"status":201', inserts=True,
)


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    description: str
    script: str  # file in bench/wrk/
    path: str = "/"  # URL path wrk is given (the insert scripts build their own)
    settings: Settings = field(default_factory=Settings)
    connections: int = 64
    threads: int = 2
    inserts: bool = False  # the script inserts rows with unique ids: verify them
    with_ceiling: bool = True
    prime_get: bool = False  # GET / on every worker first, so /get has its key
    probes: tuple[Probe, ...] = ()
    rows_per_request: int = 1  # bulk loads: rows each request inserts (req/s x this = rows/s)


# fmt: off
MEM, REDIS = Settings(cache="memory"), Settings(cache="redis")
REDIS_LOCAL = Settings(cache="redis", local_tier=True)
C32: dict[str, Any] = {"connections": 32, "threads": 32, "inserts": True, "with_ceiling": False}

SCENARIOS: list[Scenario] = [
    Scenario("get-mem", "1. cached read `/get`, memory", "GET /get, memory cache",
             "read.lua", "/get", MEM, prime_get=True, probes=(GET_PROBE,)),
    Scenario("get-redis", "1. cached read `/get`, Redis", "GET /get, Redis cache",
             "read.lua", "/get", REDIS, prime_get=True, probes=(GET_PROBE,)),
    Scenario("template", "2. template `/alice`", "GET /alice renders index.html",
             "read.lua", "/alice", MEM, probes=(Probe("GET", "/alice", contains="alice"),)),
    Scenario("list-mem", "3. cached list `/api/info`, memory", "GET /api/info, memory cache",
             "read.lua", "/api/info", MEM, probes=(LIST_PROBE,)),
    Scenario("list-redis", "3. cached list `/api/info`, Redis", "GET /api/info, Redis cache",
             "read.lua", "/api/info", REDIS, probes=(LIST_PROBE,)),
    Scenario("list-redis-local", "3. cached list `/api/info`, Redis + local tier",
             "GET /api/info, Redis cache; quart_app with CACHE_LOCAL (Flask: plain Redis)",
             "read.lua", "/api/info", REDIS_LOCAL, probes=(LIST_PROBE,)),
    Scenario("insert-url", "4. insert, seed URL, c32", "GET /info?id=..&name=..&money=..",
             "insert_url.lua", settings=MEM, probes=(URL_INSERT_PROBE,), **C32),
    Scenario("insert-post", "4. insert, `POST /api/info`, c32", "POST /api/info (JSON)",
             "insert_post.lua", settings=MEM, probes=(POST_INSERT_PROBE,), **C32),
    Scenario("mixed-redis", "5. mixed 95/5, Redis", "95% GET /api/info, 5% POST, Redis cache",
             "mixed.lua", settings=REDIS, probes=(LIST_PROBE, POST_INSERT_PROBE), **C32),
    Scenario("mixed-redis-local", "5. mixed 95/5, Redis + local tier",
             "as mixed-redis; quart_app with CACHE_LOCAL (Flask: plain Redis)", "mixed.lua",
             settings=REDIS_LOCAL, probes=(LIST_PROBE, POST_INSERT_PROBE), **C32),
    Scenario("mixed-mem", "5. mixed 95/5, memory", "as mixed-redis, per-process memory cache",
             "mixed.lua", settings=MEM, probes=(LIST_PROBE, POST_INSERT_PROBE), **C32),
    Scenario("c1000-get", "6. 1,000 connections `/get`", "GET /get, 1,000 keep-alive clients",
             "read.lua", "/get", MEM, connections=1000, prime_get=True, probes=(GET_PROBE,)),
    # Rows per second, not requests: the Flask original can only insert one row per request,
    # so its figure to compare with is scenario 4's (the report says so below the table).
    Scenario("bulk", "9. bulk load, 1,000 rows per request (rows/s)",
             "POST /api/info/bulk, 1,000 rows per request, 2 connections", "bulk.lua",
             settings=MEM, connections=2, threads=2, inserts=True, with_ceiling=False,
             rows_per_request=1000, probes=(BULK_PROBE,)),
    # quart_app only: the Flask original has no update or delete route (its probe fails).
    Scenario("mixed-changes", "10. mixed with updates and deletes, Redis",
             "GET /api/info and /api/info/<id>; POST, PUT/PATCH/DELETE with If-Match; Redis",
             "mixed_changes.lua", settings=REDIS, probes=(LIST_PROBE, UPDATE_PROBE), **C32),
    Scenario("notify-slow", "8. insert + 200 ms notification, c32",
             "seed URL inserts, 200 ms notification receiver", "insert_url.lua",
             settings=Settings(slow_notify_ms=SLOW_NOTIFY_MS), probes=(URL_INSERT_PROBE,),
             **C32),
    # Issue 7's scenario 7: one worker against two (the in-process half is scaling.py).
    Scenario("get-mem-1w", "7. cached read `/get`, memory, 1 worker",
             "GET /get, memory cache, one worker process", "read.lua", "/get",
             Settings(cache="memory", workers=1), prime_get=True, probes=(GET_PROBE,)),
]
# fmt: on
