"""The receivers quart_app ships, one module per concern, and the one place that connects them."""

from __future__ import annotations

from quart import Quart

from . import render_log


def connect_receivers(app: Quart) -> None:
    render_log.connect(app)
