"""`GET /metrics`: every worker's metrics in the Prometheus text format (when `METRICS`).

With `METRICS = false` the path still belongs to this module: it answers a JSON 404, rather
than falling through to the tutorial's catch-all `/<name>` page.
"""

from __future__ import annotations

from typing import NoReturn

from prometheus_client import CONTENT_TYPE_LATEST
from quart import Blueprint, Quart, Response, current_app
from quart.utils import run_sync
from quart_schema import hide
from werkzeug.exceptions import NotFound

from ..instrumentation import sampler_for
from ..metrics_multiprocess import exposition
from ..openapi import answers, text

PATH = "/metrics"

metrics = Blueprint("metrics", __name__)
metrics_off = Blueprint("metrics_off", __name__)


@metrics.get(PATH)
@answers(text(200, "every worker's metrics in the Prometheus text format", "text/plain"))
async def scrape() -> Response:
    sampler = sampler_for(current_app)
    if sampler is not None:
        sampler.sample()  # this worker's figures as of now
    # Reading every worker's files is blocking I/O: off the event loop.
    body = await run_sync(exposition)()
    return Response(body, content_type=CONTENT_TYPE_LATEST)


@metrics_off.get(PATH)
@hide  # not part of the API when metrics are off
async def no_metrics() -> NoReturn:
    raise NotFound("metrics are off on this server (METRICS = false)")


def init_app(app: Quart) -> None:
    app.register_blueprint(metrics if app.config["METRICS"] else metrics_off)
