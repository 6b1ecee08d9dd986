"""The info API: insert a row, read one, list them newest first (cached, kept true on insert)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, current_app, url_for
from quart_schema import validate_querystring, validate_response
from werkzeug.exceptions import NotFound

from ..db import InfoStore
from ..extensions import cache
from ..info_cache import cached_page, cached_row
from ..inserts import insert_info
from ..schemas import InfoIn, InfoOut, InfoPage, PageQuery
from ..validation import invalid_field, validate_body

info_api = Blueprint("info_api", __name__, url_prefix="/api/info")


def current_store() -> InfoStore:
    store: InfoStore = current_app.extensions["database"].store
    return store


@info_api.post("")
@validate_body(InfoIn)
@validate_response(InfoOut, 201)
async def create_info(data: InfoIn) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Insert a row (JSON or form body); 201 with the stored row and its Location."""
    row = await insert_info(current_app, current_store(), data.id, data.name, data.money)
    location = url_for("info_api.read_info", info_id=row.id)
    return row.to_json(), 201, {"Location": location}


@info_api.get("")
@validate_querystring(PageQuery)
@validate_response(InfoPage)
async def list_info(query_args: PageQuery) -> dict[str, Any]:
    """Rows newest first; `next_cursor` fetches the next, older page."""
    try:
        return await cached_page(cache.client, current_store(), query_args.limit,
                                 query_args.cursor)
    except ValueError:
        raise invalid_field("cursor", "not a cursor this API returned") from None


@info_api.get("/<int:info_id>")
@validate_response(InfoOut)
async def read_info(info_id: int) -> dict[str, Any]:
    row = await cached_row(cache.client, current_store(), info_id)
    if row is None:
        raise NotFound(f"no info row with id {info_id}")
    return row
