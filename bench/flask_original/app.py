"""The seed tutorial's Flask app, written faithfully: the benchmark's Flask peer.

It puts the article's three snippets into one app, the way a Flask user would:

* Flask-Caching (`SimpleCache` by default, `RedisCache` when FLASK_PEER_CACHE_TYPE says so)
  with `GET /` setting 'name'='8888' and `GET /get` returning it. As in the seed, `/get`
  before `/` returns None and Flask answers 500.
* The `before_render_template` receiver that logs renders of index.html, for
  `GET /<name>` (index.html) and `GET /login` (login.html).
* A DBUtils `PooledDB` over pymysql with the seed's exact settings, and
  `GET /info?id=5&name=redis&money=588` inserting into `info`. Where the seed only calls the
  handler directly, this sends a real blinker custom signal after the commit (the fair Flask
  version); its receivers log the insert and invalidate the cached list view.
* `GET /api/info` (a `@cache.cached` JSON list, newest first, 50 rows) and
  `POST /api/info` (JSON insert, 201).
* Optionally (FLASK_PEER_SLOW_NOTIFY_MS > 0) a slow "mail/SMS on insert" receiver, called
  inline by the signal as Flask signals are.

Environment:
  FLASK_PEER_CACHE_TYPE   SimpleCache (default) or RedisCache
  FLASK_PEER_REDIS_URL    redis://127.0.0.1:6379/14
  FLASK_PEER_DB_HOST/PORT/USER/PASSWORD/NAME   127.0.0.1 / 3306 / root / "" / quart_app_bench
  FLASK_PEER_SLOW_NOTIFY_MS   0 (off); the benchmark uses 200
  FLASK_PEER_LOG_LEVEL    INFO
"""

from __future__ import annotations

import logging
import os
import time
from decimal import Decimal, InvalidOperation
from typing import Any

import pymysql
from blinker import Namespace
from dbutils.pooled_db import PooledDB
from flask import Flask, jsonify, render_template, request, signals
from flask_caching import Cache

log = logging.getLogger("flask_original")
if not log.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s %(message)s"))
    log.addHandler(_handler)
log.setLevel(os.environ.get("FLASK_PEER_LOG_LEVEL", "INFO"))
log.propagate = False

DB_NAME = os.environ.get("FLASK_PEER_DB_NAME", "quart_app_bench")
DB_ARGS: dict[str, Any] = {
    "host": os.environ.get("FLASK_PEER_DB_HOST", "127.0.0.1"),
    "port": int(os.environ.get("FLASK_PEER_DB_PORT", "3306")),
    "user": os.environ.get("FLASK_PEER_DB_USER", "root"),
    "password": os.environ.get("FLASK_PEER_DB_PASSWORD", ""),
    "charset": "utf8mb4",
}
SLOW_NOTIFY_MS = int(os.environ.get("FLASK_PEER_SLOW_NOTIFY_MS", "0"))
LIST_CACHE_KEY = "api_info_list"
LIST_LIMIT = 50

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS info (
    id INT PRIMARY KEY,
    name VARCHAR(64) NOT NULL,
    money DECIMAL(12,2) NOT NULL,
    seq BIGINT NOT NULL AUTO_INCREMENT UNIQUE
)
"""


def ensure_schema() -> None:
    """Create the database and the `info` table if missing (the seed assumes they exist)."""
    conn = pymysql.connect(**DB_ARGS)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DB_NAME}`")
            cur.execute(f"USE `{DB_NAME}`")
            cur.execute(CREATE_TABLE)
        conn.commit()
    finally:
        conn.close()


ensure_schema()

# The seed's pool, setting for setting (its database was `school`, its password '123123').
POOL = PooledDB(
    creator=pymysql,
    maxconnections=6,
    mincached=2,
    maxcached=5,
    maxshared=3,
    blocking=True,
    maxusage=None,
    setsession=[],
    ping=0,
    database=DB_NAME,
    **DB_ARGS,
)

cache_type = os.environ.get("FLASK_PEER_CACHE_TYPE", "SimpleCache")
config: dict[str, Any] = {
    "CACHE_TYPE": cache_type,
    "CACHE_DEFAULT_TIMEOUT": 300,
}
if cache_type == "RedisCache":
    config["CACHE_REDIS_URL"] = os.environ.get("FLASK_PEER_REDIS_URL", "redis://127.0.0.1:6379/14")

app = Flask(__name__)
app.config.from_mapping(config)
cache = Cache(app)


# --- 1. Flask-Caching, as in the seed ---------------------------------------------------


@app.route("/")
def index() -> str:
    cache.set("name", "8888")
    return "index"


@app.route("/get")
def get() -> Any:
    # As the seed: None (before `/` was called) makes Flask answer 500.
    return cache.get("name")


# --- 2. The built-in before_render_template signal ---------------------------------------


def func1(sender: Flask, template: Any, context: dict[str, Any], **kwargs: Any) -> None:
    # The seed print()s on every render; a logger at DEBUG keeps the work without the flood.
    if template.name == "index.html":
        log.debug("index.html rendered: %s", context.get("name"))


signals.before_render_template.connect(func1, app)


@app.route("/<string:name>")
def hello(name: str) -> str:
    return render_template("index.html", name=name)


@app.route("/login")
def login() -> str:
    return render_template("login.html")


# --- 3. Custom signal + pooled insert ----------------------------------------------------

bench_signals = Namespace()
info_inserted = bench_signals.signal("info-inserted")


@info_inserted.connect
def handle_info_insert(sender: Any, **kwargs: Any) -> None:
    log.debug("info inserted: %s", kwargs)


@info_inserted.connect
def invalidate_info_list(sender: Any, **kwargs: Any) -> None:
    # "When the carousel table changes, delete the cache" (the seed's Django example).
    cache.delete(LIST_CACHE_KEY)


if SLOW_NOTIFY_MS > 0:

    @info_inserted.connect
    def notify_slowly(sender: Any, **kwargs: Any) -> None:
        # The seed's "send an SMS when a user is created": inline, as Flask signals run.
        time.sleep(SLOW_NOTIFY_MS / 1000)
        log.info("notification delivered id=%s", kwargs.get("id"))


def insert_data(sql: str, *args: Any) -> None:
    conn = POOL.connection()
    try:
        cursor = conn.cursor(pymysql.cursors.DictCursor)
        cursor.execute(sql, args)
        conn.commit()
        cursor.close()
    finally:
        conn.close()  # back to the pool (the seed leaves this to garbage collection)


INSERT_SQL = "INSERT INTO info (id, name, money) VALUES (%s, %s, %s)"


@app.route("/info", methods=["GET"])
def create_tag() -> str:
    id = request.args.get("id", type=int)
    name = request.args.get("name")
    money = request.args.get("money")
    insert_data(INSERT_SQL, id, name, money)
    info_inserted.send(app, table="info", id=id, name=name, money=money)
    return "创建info数据成功!!!"


# --- The list view the insert signal invalidates, and its JSON insert --------------------


@app.get("/api/info")
@cache.cached(key_prefix=LIST_CACHE_KEY)
def list_info() -> Any:
    conn = POOL.connection()
    try:
        cursor = conn.cursor(pymysql.cursors.DictCursor)
        cursor.execute("SELECT id, name, money FROM info ORDER BY seq DESC LIMIT %s", (LIST_LIMIT,))
        rows = cursor.fetchall()
        cursor.close()
    finally:
        conn.close()
    return jsonify([{"id": r["id"], "name": r["name"], "money": f"{r['money']:.2f}"} for r in rows])


@app.post("/api/info")
def create_info() -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify(error="expected a JSON object"), 400
    try:
        id = int(body["id"])
        name = str(body["name"])
        money = Decimal(str(body["money"])).quantize(Decimal("0.01"))
    except (KeyError, TypeError, ValueError, InvalidOperation):
        return jsonify(error="id (int), name and money are required"), 400
    if not name or len(name) > 64:
        return jsonify(error="name must be 1 to 64 characters"), 400
    try:
        insert_data(INSERT_SQL, id, name, money)
    except pymysql.err.IntegrityError:
        return jsonify(error=f"info {id} exists"), 409
    info_inserted.send(app, table="info", id=id, name=name, money=str(money))
    return jsonify(id=id, name=name, money=f"{money:.2f}"), 201


if __name__ == "__main__":
    app.run()
