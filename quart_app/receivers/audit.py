"""The tutorial's insert log: one audit line per committed info row."""

from __future__ import annotations

import logging
from typing import Any

from quart import Quart

from ..db import InfoRow
from ..dispatch import is_remote_delivery, receiver
from ..signals import info_insert_failed, info_inserted

logger = logging.getLogger("quart_app.audit")


def connect(app: Quart) -> None:
    @receiver(info_inserted, app, dispatch_uid="audit.info_inserted")
    async def log_insert(sender: Quart, row: InfoRow, **extra: Any) -> None:
        where = " (in another process)" if is_remote_delivery() else ""
        logger.info("info inserted: id=%d name=%r money=%s%s", row.id, row.name, row.money,
                    where)

    @receiver(info_insert_failed, app, dispatch_uid="audit.info_insert_failed")
    async def log_failure(sender: Quart, id: int | None, error: Exception, **extra: Any) -> None:
        logger.info("info insert not stored: id=%s (%s)", id, error)
