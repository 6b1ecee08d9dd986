"""The info API: insert a row, read one, list them newest first.

The reads are cached views (`cache.cached`); an insert invalidates what it makes stale
(`forget_cached_reads`, called by the invalidation receiver before the insert is answered).
"""

from __future__ import annotations

import asyncio
from typing import Any

from quart import Blueprint, Quart, current_app, url_for
from werkzeug.exceptions import NotFound

from ..cache.views import delete_cached
from ..db import InfoStore
from ..extensions import cache
from ..inserts import insert_info
from ..openapi import LOCATION, NOT_MODIFIED, Answer, answers
from ..schemas import InfoIn, InfoOut, InfoPage, PageQuery
from ..validation import invalid_field, validate_body, validate_query

info_api = Blueprint("info_api", __name__, url_prefix="/api/info")

# OpenAPI links, for clients and for schemathesis' stateful tests.
READ_ROW = {"ReadRow": {"operationId": "get_read_info",
                        "parameters": {"info_id": "$response.body#/id"}}}
NEXT_PAGE = {"NextPage": {"operationId": "get_list_info",
                          "parameters": {"cursor": "$response.body#/next_cursor"}}}


def current_store() -> InfoStore:
    store: InfoStore = current_app.extensions["database"].store
    return store


@info_api.post("")
@answers(Answer(201, "the stored row", schema=InfoOut, headers=LOCATION, links=READ_ROW),
         400, 409, 413, 415, 503)
@validate_body(InfoIn)
async def create_info(data: InfoIn) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Insert a row (JSON or form body); 201 with the stored row and its Location."""
    row = await insert_info(current_app, current_store(), data.id, data.name, data.money)
    location = url_for("info_api.read_info", info_id=row.id)
    return row.to_json(), 201, {"Location": location}


@info_api.get("")
@cache.cached()
@answers(Answer(200, "a page of rows, newest first", schema=InfoPage, links=NEXT_PAGE),
         NOT_MODIFIED, 400, 503)
@validate_query(PageQuery)
async def list_info(query_args: PageQuery) -> dict[str, Any]:
    """Rows newest first; `next_cursor` fetches the next, older page."""
    try:
        rows, next_cursor = await current_store().list_page(query_args.limit, query_args.cursor)
    except ValueError:
        raise invalid_field("cursor", "not a cursor this API returned") from None
    return {"items": [row.to_json() for row in rows], "next_cursor": next_cursor}


@info_api.get("/<int:info_id>")
@cache.cached()
@answers(Answer(200, "the row", schema=InfoOut), NOT_MODIFIED, 404, 503)
async def read_info(info_id: int) -> dict[str, Any]:
    """One row; its 404 is cached too, until the row is inserted."""
    row = await current_store().get(info_id)
    if row is None:
        raise NotFound(f"no info row with id {info_id}")
    return row.to_json()


async def forget_cached_reads(app: Quart, row_id: int) -> None:
    """What a new row makes stale: every page of the list, and the row's own URL (a 404).

    Invalidation by generation (`quart_app.cache.generations`): a page computed before the
    insert committed and stored after this call is never served.
    """
    client = cache.client_for(app)
    # Built from the URL map, not url_for: receivers also run outside requests (the bus).
    row_path = app.url_map.bind("").build("info_api.read_info", {"info_id": row_id})
    # Together: with the local tier each waits for every process to confirm its eviction.
    # Both run to the end even if one fails, before the insert's response goes out.
    outcomes = await asyncio.gather(delete_cached(client, list_info),
                                    delete_cached(client, read_info, path=row_path),
                                    return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
