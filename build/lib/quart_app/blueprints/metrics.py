"""`GET /metrics`: every worker's metrics in the Prometheus text format (when `METRICS`)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from quart import Blueprint, Response, current_app
from quart.utils import run_sync

from ..instrumentation import sampler_for
from ..metrics_multiprocess import exposition
from ..openapi import answers, text

metrics = Blueprint("metrics", __name__)


@metrics.get("/metrics")
@answers(text(200, "every worker's metrics in the Prometheus text format", "text/plain"))
async def scrape() -> Response:
    sampler = sampler_for(current_app)
    if sampler is not None:
        sampler.sample()  # this worker's figures as of now
    # Reading every worker's files is blocking I/O: off the event loop.
    body = await run_sync(exposition)()
    return Response(body, content_type=CONTENT_TYPE_LATEST)
