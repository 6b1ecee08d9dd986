"""The tutorial's demo routes: the cache pair `/` and `/get`, and the two template pages.

Behind `SEED_ROUTES` (on by default) so a production deploy can leave them out.
"""

from __future__ import annotations

from quart import Blueprint, render_template
from werkzeug.exceptions import NotFound

from ..cache import MISSING
from ..extensions import cache

seed = Blueprint("seed", __name__)

SEED_KEY = "name"
SEED_VALUE = "8888"


@seed.get("/")
async def index() -> str:
    await cache.set(SEED_KEY, SEED_VALUE)
    return "index"


@seed.get("/get")
async def get() -> str:
    value = await cache.get(SEED_KEY, MISSING)
    if value is MISSING:
        # Flask's original returns None here and crashes with a 500.
        raise NotFound(f"nothing is cached under {SEED_KEY!r}: call GET / first")
    return str(value)


@seed.get("/login")
async def login() -> str:
    return await render_template("login.html")


@seed.get("/<name>")
async def hello(name: str) -> str:
    return await render_template("index.html", name=name)
