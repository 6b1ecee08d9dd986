"""quart_app plus cached probe views: one per decorator parameter, each counting its runs.

Used in process by the view tests (`add_probe_views`) and as `run.py --app
tests.cache.view_app:create_view_app()` by the process tests, where runs are also counted
in the cache so that every worker adds to one number.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from quart import Quart, Response, current_app, request
from werkzeug.exceptions import NotFound

from quart_app import create_app
from quart_app.extensions import cache

BODIES: dict[str, bytes] = {
    "empty": b"",
    "unicode": "é中文 ✓ \U0001f600".encode(),
    "binary": bytes(range(256)) * 4,
    "large": b"x" * 1_000_000,
}


@dataclass
class Probe:
    """What the probe views count and wait on, per app."""

    runs: Counter[str] = field(default_factory=Counter)
    #: The "data" the views serve; a test changes it as an insert would.
    version: int = 0
    entered: dict[str, asyncio.Event] = field(default_factory=dict)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)

    def gate(self, name: str) -> tuple[asyncio.Event, asyncio.Event]:
        """(entered, release) for the gated view `name`: it sets the first, awaits the second."""
        self.entered[name] = asyncio.Event()
        self.gates[name] = asyncio.Event()
        return self.entered[name], self.gates[name]


def probe() -> Probe:
    found: Probe = current_app.extensions["probe"]
    return found


def counted(name: str) -> int:
    probe().runs[name] += 1
    return probe().runs[name]


def runs(app: Quart, name: str) -> int:
    """How many times `app`'s probe view `name` ran (for tests, outside the app context)."""
    return int(app.extensions["probe"].runs[name])


def create_view_app(config: dict[str, Any] | None = None) -> Quart:
    app = create_app(config)
    add_probe_views(app)

    @app.after_request
    async def name_the_worker(response: Response) -> Response:
        response.headers["X-Worker-PID"] = str(os.getpid())  # not part of any cached entry
        return response

    return app


def add_probe_views(app: Quart) -> None:
    app.extensions["probe"] = Probe()

    @app.get("/probe/plain")
    @cache.cached(timeout=60)
    async def plain() -> dict[str, Any]:
        return {"runs": counted("plain"), "version": probe().version}

    @app.get("/probe/search")
    @cache.cached(timeout=60)
    async def search() -> dict[str, Any]:
        counted("search")
        return {"args": [list(pair) for pair in request.args.items(multi=True)]}

    @app.get("/probe/sync")
    @cache.cached(timeout=60)
    def sync_view() -> dict[str, Any]:
        return {"runs": counted("sync")}

    @app.get("/probe/status/<int:code>")
    @cache.cached(timeout=60)
    async def status(code: int) -> tuple[dict[str, int], int, dict[str, str]]:
        headers = {"Location": "/probe/plain"} if code in (301, 302) else {}
        return {"runs": counted(f"status-{code}")}, code, headers

    @app.get("/probe/missing/<int:item>")
    @cache.cached(timeout=60)
    async def missing(item: int) -> dict[str, int]:
        counted("missing")
        if item > probe().version:
            raise NotFound(f"no item {item}")
        return {"item": item}

    @app.get("/probe/cookie")
    @cache.cached(timeout=60)
    async def cookie() -> Response:
        response = Response(f"cookie {counted('cookie')}")
        response.set_cookie("session", "for-one-client")
        return response

    @app.get("/probe/private")
    @cache.cached(timeout=60)
    async def private() -> tuple[str, dict[str, str]]:
        return f"private {counted('private')}", {"Cache-Control": "private"}

    @app.get("/probe/own-headers")
    @cache.cached(timeout=60)
    async def own_headers() -> tuple[str, dict[str, str]]:
        counted("own-headers")
        return "mine", {"ETag": '"chosen-by-view"', "Cache-Control": "public, max-age=5"}

    @app.get("/probe/vary")
    @cache.cached(timeout=60)
    async def vary() -> tuple[str, dict[str, str]]:
        counted("vary")
        return f"lang={request.headers.get('Accept-Language')}", {"Vary": "Accept-Language"}

    @app.get("/probe/vary-star")
    @cache.cached(timeout=60)
    async def vary_star() -> tuple[str, dict[str, str]]:
        return f"star {counted('vary-star')}", {"Vary": "*"}

    @app.get("/probe/unless")
    @cache.cached(timeout=60, unless=lambda: request.args.get("skip") == "1")
    async def unless() -> dict[str, int]:
        return {"runs": counted("unless")}

    @app.get("/probe/unless-args/<int:number>")
    @cache.cached(timeout=60, unless=lambda view, number: number == 0)
    async def unless_args(number: int) -> dict[str, int]:
        return {"runs": counted("unless-args")}

    @app.get("/probe/filtered/<int:code>")
    @cache.cached(timeout=60, response_filter=lambda returned: returned[1] == 500)
    async def filtered(code: int) -> tuple[dict[str, int], int]:
        return {"runs": counted(f"filtered-{code}")}, code

    async def refresh_requested() -> bool:  # an async callback works too
        return request.headers.get("X-Refresh") == "1"

    @app.get("/probe/forced")
    @cache.cached(timeout=60, forced_update=refresh_requested)
    async def forced() -> dict[str, int]:
        return {"runs": counted("forced")}

    @app.get("/probe/per-user")
    @cache.cached(timeout=60, key_prefix=lambda: request.headers.get("X-User", "anon"))
    async def per_user() -> dict[str, Any]:
        return {"runs": counted("per-user"), "user": request.headers.get("X-User", "anon")}

    @app.get("/probe/prefix-path/<name>")
    @cache.cached(timeout=60, key_prefix="page/%s")
    async def prefix_path(name: str) -> dict[str, Any]:
        return {"runs": counted("prefix-path"), "name": name}

    @app.get("/probe/custom")
    @cache.cached(timeout=60, make_cache_key=lambda: "always-the-same",
                  key_prefix=lambda: request.headers.get("X-User", "anon"))
    async def custom() -> dict[str, Any]:
        return {"runs": counted("custom"), "user": request.headers.get("X-User", "anon")}

    @app.get("/probe/no-query")
    @cache.cached(timeout=60, query_string=False)
    async def no_query() -> dict[str, int]:
        return {"runs": counted("no-query")}

    @app.get("/probe/cache-none")
    @cache.cached(timeout=60, cache_none=True)
    async def cache_none() -> dict[str, int]:
        return {"runs": counted("cache-none")}

    @app.route("/probe/methods", methods=["GET", "POST"])
    @cache.cached(timeout=60)
    async def methods() -> dict[str, Any]:
        return {"runs": counted("methods"), "method": request.method}

    @app.get("/probe/body/<kind>")
    @cache.cached(timeout=60)
    async def body(kind: str) -> Response:
        counted(f"body-{kind}")
        return Response(BODIES[kind], content_type="application/octet-stream")

    @app.get("/probe/short")
    @cache.cached(timeout=0.3)
    async def short() -> dict[str, int]:
        return {"runs": counted("short")}

    @app.get("/probe/forever")
    @cache.cached(timeout=0)
    async def forever() -> dict[str, int]:
        return {"runs": counted("forever")}

    @app.get("/probe/gated/<name>")
    @cache.cached(timeout=60)
    async def gated(name: str) -> dict[str, Any]:
        version = probe().version  # read before waiting, as a query would
        runs = counted(f"gated-{name}")
        entered, release = probe().entered[name], probe().gates[name]
        entered.set()
        await release.wait()
        return {"runs": runs, "version": version}

    @app.get("/probe/slow")
    @cache.cached(timeout=60)
    async def slow() -> dict[str, Any]:
        runs = counted("slow")
        shared_runs = await cache.inc("probe-runs:slow")  # every worker adds to this one
        await asyncio.sleep(float(request.args.get("seconds", "0.5")))
        return {"runs": runs, "shared_runs": shared_runs}

    @app.get("/probe/boom")
    @cache.cached(timeout=60)
    async def boom() -> str:
        counted("boom")
        await asyncio.sleep(0.05)
        raise RuntimeError("view failed")
