"""`GET /metrics`: every worker's metrics in the Prometheus text format (when `METRICS`).

With `METRICS = false` the path still belongs to this module: it answers a JSON 404, rather
than falling through to the tutorial's catch-all `/<name>` page.
"""

from __future__ import annotations

import logging
from typing import NoReturn

from prometheus_client import CONTENT_TYPE_LATEST
from quart import Blueprint, Quart, Response, current_app
from quart.utils import run_sync
from quart_schema import hide
from werkzeug.exceptions import NotFound

from ..http_errors import error_response
from ..instrumentation import sampler_for
from ..metrics_multiprocess import MetricsUnreadable, exposition
from ..openapi import answers, error, text

logger = logging.getLogger("quart_app.metrics")

PATH = "/metrics"
#: Seconds a scraper that found the workers' files unreadable should wait.
RETRY_AFTER_SECONDS = 1

metrics = Blueprint("metrics", __name__)
metrics_off = Blueprint("metrics_off", __name__)


@metrics.get(PATH)
@answers(text(200, "every worker's metrics in the Prometheus text format", "text/plain"),
         error(503, "a worker's metrics file could not be read; try again"))
async def scrape() -> Response:
    sampler = sampler_for(current_app)
    if sampler is not None:
        sampler.sample()  # this worker's figures as of now
    try:
        # Reading every worker's files is blocking I/O: off the event loop.
        body = await run_sync(exposition)()
    except MetricsUnreadable as error:
        logger.warning("metrics scrape answered 503: %s", error)
        unreadable = error_response(503, "metrics_unreadable",
                                    "a worker's metrics file could not be read; try again")
        unreadable.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return unreadable
    return Response(body, content_type=CONTENT_TYPE_LATEST)


@metrics_off.get(PATH)
@hide  # not part of the API when metrics are off
async def no_metrics() -> NoReturn:
    raise NotFound("metrics are off on this server (METRICS = false)")


def init_app(app: Quart) -> None:
    app.register_blueprint(metrics if app.config["METRICS"] else metrics_off)
