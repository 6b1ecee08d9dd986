"""The tutorial's render log: a before_render_template receiver that logs index.html renders."""

from __future__ import annotations

import logging
from typing import Any

from jinja2 import Template
from quart import Quart
from quart.signals import before_render_template

logger = logging.getLogger("quart_app.render")

LOGGED_TEMPLATE = "index.html"


async def log_index_render(
    sender: Quart, template: Template, context: dict[str, Any], **extra: Any
) -> None:
    if template.name == LOGGED_TEMPLATE:
        logger.info("rendering %s for name=%r", template.name, context.get("name"))


def connect(app: Quart) -> None:
    # Connected to this app only: another app in the same process renders unobserved.
    before_render_template.connect(log_index_render, sender=app)
