"""Bulk loads of info rows: a JSON array in one body, or NDJSON streamed past it.

Both give every row its outcome, in the order sent, and one bad or taken row never stops the
others. An NDJSON load is stored as it is read, `BULK_CHUNK` rows at a time (one multi-row
INSERT and one invalidation each, `quart_app.changes.insert_many_info`), so a load larger
than one body never sits in memory: only its outcomes do, an int per stored row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import aclosing
from typing import Any

from pydantic import ValidationError
from quart import Quart, Response

from ..changes import insert_many_info
from ..db import DuplicateId, InfoRow, InfoStore, StoreError, StoreUnavailable
from ..db.store import BULK_CHUNK, NewRow
from ..schemas import InfoIn
from ..validation import InvalidField, field_errors, ndjson_values, validate_item

#: A row's outcome: the id of a stored row (201), or the result object of one not stored.
Outcome = int | dict[str, Any]


class BulkLoad:
    """Rows validated one by one and stored in chunks, every outcome kept in order."""

    def __init__(self, app: Quart, store: InfoStore) -> None:
        self.app = app
        self.store = store
        self.outcomes: list[Outcome] = []
        self._pending: list[tuple[int, NewRow]] = []  # (position in outcomes, row)
        self._stored_before = False
        self._unavailable: StoreUnavailable | None = None

    def add(self, item: Any) -> None:
        """One row as sent (or the `InvalidField` that says why its line is not one)."""
        try:
            if isinstance(item, InvalidField):
                raise item
            data = validate_item(InfoIn, item)
        except (ValidationError, InvalidField) as error:
            self.outcomes.append({"status": 400, "error": "invalid_request",
                                  "fields": field_errors(error)})
            return
        assert isinstance(data, InfoIn)
        self._pending.append((len(self.outcomes), (data.id, data.name, data.money)))
        self.outcomes.append(0)  # its place, filled by `store`

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def store_pending(self) -> None:
        """Store the rows added since the last call, in one `insert_many_info`.

        The database unavailable for the load's first statement is the request's 503
        (nothing is stored); for a later one, once earlier chunks are committed, it is the
        outcome of that chunk's rows and of every later row (not tried: their fate would be
        unknown too), as `InfoStore.insert_many` does within one call.
        """
        if not self._pending:
            return
        rows = [row for _, row in self._pending]
        outcomes: Sequence[InfoRow | StoreError]
        if self._unavailable is not None:
            outcomes = [self._unavailable] * len(rows)
        else:
            try:
                outcomes = await insert_many_info(self.app, self.store, rows)
            except StoreUnavailable as error:
                if not self._stored_before:
                    raise
                self._unavailable = error
                outcomes = [error] * len(rows)
        self._stored_before = True
        for (position, _), outcome in zip(self._pending, outcomes, strict=True):
            self.outcomes[position] = outcome.id if isinstance(outcome, InfoRow) else \
                _refused(outcome)
        self._pending.clear()


async def load_array(app: Quart, store: InfoStore, items: list[Any]) -> list[Outcome]:
    load = BulkLoad(app, store)
    for item in items:
        load.add(item)
    await load.store_pending()
    return load.outcomes


async def load_ndjson(
    app: Quart, store: InfoStore, max_rows: int, max_line: int
) -> tuple[list[Outcome], bool]:
    """Store the request's NDJSON rows as they arrive; their outcomes, and whether the body
    had more than `max_rows` rows (then reading stops there: the first `max_rows` are
    stored as usual, nothing after them is read or stored)."""
    load = BulkLoad(app, store)
    over = False
    async with aclosing(ndjson_values(max_line)) as values:
        async for value in values:
            if len(load.outcomes) == max_rows:
                over = True
                break
            load.add(value)
            if load.pending >= BULK_CHUNK:
                await load.store_pending()
    await load.store_pending()
    return load.outcomes, over


def answer(outcomes: list[Outcome], *, ndjson: bool) -> Response:
    """200 with every outcome: `{"results": [...]}`, or one result object per line."""
    if ndjson:
        return Response(b"".join(line + b"\n" for line in _encoded(outcomes)),
                        mimetype="application/x-ndjson")
    return Response(b'{"results":[' + b",".join(_encoded(outcomes)) + b"]}",
                    mimetype="application/json")


def results(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    return [{"status": 201, "id": outcome} if isinstance(outcome, int) else outcome
            for outcome in outcomes]


def _encoded(outcomes: list[Outcome]) -> Iterator[bytes]:
    for outcome in outcomes:
        if isinstance(outcome, int):
            yield b'{"status":201,"id":%d}' % outcome
        else:
            yield json.dumps(outcome, ensure_ascii=False, separators=(",", ":")).encode()


def _refused(outcome: StoreError) -> dict[str, Any]:
    if isinstance(outcome, DuplicateId):
        return {"status": 409, "id": outcome.id, "error": "duplicate_id",
                "message": str(outcome)}
    return {"status": 503, "error": "database_unavailable", "message": str(outcome)}
