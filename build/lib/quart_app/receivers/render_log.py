"""The tutorial's render log: index.html before it renders, login.html once it has rendered."""

from __future__ import annotations

import logging
from typing import Any

from jinja2 import Template
from quart import Quart
from quart.signals import before_render_template, template_rendered

from ..dispatch import receiver

logger = logging.getLogger("quart_app.render")


def connect(app: Quart) -> None:
    @receiver(before_render_template, app, dispatch_uid="render_log.before_render_template")
    async def log_index_render(
        sender: Quart, template: Template, context: dict[str, Any], **extra: Any
    ) -> None:
        if template.name == "index.html":
            logger.info("rendering index.html for name=%r", context.get("name"))

    @receiver(template_rendered, app, dispatch_uid="render_log.template_rendered")
    async def log_login_render(
        sender: Quart, template: Template, context: dict[str, Any], **extra: Any
    ) -> None:
        if template.name == "login.html":
            logger.info("rendered login.html")
