"""The tutorial's demo routes: the cache pair, the two template pages and the `/info` insert.

Behind `TUTORIAL_ROUTES` (on by default; `SEED_ROUTES` is its old name) so a production
deploy can leave them out.
"""

from __future__ import annotations

from quart import Blueprint, current_app, flash, redirect, render_template, url_for
from werkzeug.exceptions import NotFound
from werkzeug.wrappers.response import Response as WerkzeugResponse

from ..cache import MISSING
from ..changes import insert_info
from ..db import current_store
from ..extensions import cache
from ..openapi import LOCATION, Answer, answers, error, text
from ..schemas import InfoIn, LoginForm
from ..validation import validate_body, validate_query

tutorial = Blueprint("tutorial", __name__)

CACHED_KEY = "name"
CACHED_VALUE = "8888"
INSERTED_MESSAGE = "创建info数据成功!!!"  # the tutorial's own answer: "info row created"


@tutorial.get("/")
@answers(text(200, "`index`, after caching name=8888"), 503)
async def index() -> str:
    await cache.set(CACHED_KEY, CACHED_VALUE)
    return "index"


@tutorial.get("/get")
@answers(text(200, "the cached name"), error(404, "nothing cached yet: call GET / first"), 503)
async def get() -> str:
    value = await cache.get(CACHED_KEY, MISSING)
    if value is MISSING:
        # Flask's original returns None here and crashes with a 500.
        raise NotFound(f"nothing is cached under {CACHED_KEY!r}: call GET / first")
    return str(value)


@tutorial.get("/info")
@answers(text(200, "the tutorial's answer, 创建info数据成功!!! (info row created)"),
         400, 409, 503)
@validate_query(InfoIn)
async def info(query_args: InfoIn) -> str:
    """`/info?id=5&name=redis&money=588`, as in the tutorial, through the same insert path."""
    await insert_info(
        current_app, current_store(), query_args.id, query_args.name, query_args.money
    )
    return INSERTED_MESSAGE


@tutorial.get("/login")
@answers(text(200, "the login page"))
async def login() -> str:
    return await render_template("login.html")


@tutorial.post("/login")
@answers(Answer(302, "the greeting is flashed; back to the login page", None, headers=LOCATION),
         400, 413, 415)
@validate_body(LoginForm)
async def log_in(data: LoginForm) -> WerkzeugResponse:
    """No real authentication: it flashes a greeting, which message_flashed receivers hear."""
    await flash(f"Welcome, {data.username}!", "success")
    return redirect(url_for("tutorial.login"))


@tutorial.get("/<name>")
@answers(text(200, "index.html, greeting the name"))
async def hello(name: str) -> str:
    return await render_template("index.html", name=name)
