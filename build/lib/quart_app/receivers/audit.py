"""The tutorial's change log: one audit line per committed insert, update or delete, and one
per change that was not made."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from quart import Quart

from ..db import InfoRow
from ..dispatch import is_remote_delivery, receiver
from ..signals import (
    info_delete_failed,
    info_deleted,
    info_insert_failed,
    info_inserted,
    info_update_failed,
    info_updated,
)

logger = logging.getLogger("quart_app.audit")


def _where() -> str:
    return " (in another process)" if is_remote_delivery() else ""


def connect(app: Quart) -> None:
    @receiver(info_inserted, app, dispatch_uid="audit.info_inserted")
    async def log_insert(sender: Quart, row: InfoRow, **extra: Any) -> None:
        logger.info("info inserted: id=%d name=%r money=%s%s", row.id, row.name, row.money,
                    _where())

    @receiver(info_insert_failed, app, dispatch_uid="audit.info_insert_failed")
    async def log_failure(sender: Quart, id: int | None, error: Exception, **extra: Any) -> None:
        logger.info("info insert not stored: id=%s (%s)", id, error)

    @receiver(info_updated, app, dispatch_uid="audit.info_updated")
    async def log_update(sender: Quart, row: InfoRow, previous: InfoRow, **extra: Any) -> None:
        logger.info("info updated: id=%d name=%r money=%s (was name=%r money=%s)%s", row.id,
                    row.name, row.money, previous.name, previous.money, _where())

    @receiver(info_update_failed, app, dispatch_uid="audit.info_update_failed")
    async def log_update_failure(
        sender: Quart, id: int, name: str | None, money: Decimal | None, error: Exception,
        **extra: Any,
    ) -> None:
        logger.info("info update not applied: id=%d (%s)", id, error)

    @receiver(info_deleted, app, dispatch_uid="audit.info_deleted")
    async def log_delete(sender: Quart, row: InfoRow, **extra: Any) -> None:
        logger.info("info deleted: id=%d name=%r money=%s%s", row.id, row.name, row.money,
                    _where())

    @receiver(info_delete_failed, app, dispatch_uid="audit.info_delete_failed")
    async def log_delete_failure(sender: Quart, id: int, error: Exception, **extra: Any) -> None:
        logger.info("info delete not applied: id=%d (%s)", id, error)
