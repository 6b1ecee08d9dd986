"""The info API: insert a row (or many), read one, list them newest first, update, delete.

The reads are cached views (`cache.cached`); a change invalidates what it makes stale
(`quart_app.info.invalidation`, whose receivers run before the change is answered).
Updates and deletes honour `If-Match` with the strong ETag a read of the row sends.
"""

from __future__ import annotations

from typing import Any, cast

from pydantic import ValidationError
from quart import Blueprint, Response, current_app, request, url_for
from werkzeug.exceptions import (
    NotFound,
    PreconditionFailed,
    RequestEntityTooLarge,
)
from werkzeug.http import parse_etags, unquote_etag

from ..cache.validators import strong_etag
from ..changes import delete_info, insert_info, insert_many_info, update_info
from ..db import DuplicateId, InfoRow, NoSuchRow, RowChanged, StoreError, current_store
from ..db.store import NewRow
from ..extensions import cache
from ..http_errors import error_response
from ..openapi import (
    ETAG,
    LOCATION,
    NOT_MODIFIED,
    PRECONDITION,
    Answer,
    answers,
    json_array_body,
)
from ..schemas import (
    BulkOut,
    InfoIn,
    InfoOut,
    InfoPage,
    InfoPatch,
    InfoPut,
    PageQuery,
)
from ..validation import (
    InvalidField,
    field_errors,
    invalid_field,
    read_json_array,
    validate_body,
    validate_item,
    validate_query,
)

info_api = Blueprint("info_api", __name__, url_prefix="/api/info")

# OpenAPI links, for clients and for schemathesis' stateful tests.
READ_ROW = {"ReadRow": {"operationId": "get_read_info",
                        "parameters": {"info_id": "$response.body#/id"}}}
NEXT_PAGE = {"NextPage": {"operationId": "get_list_info",
                          "parameters": {"cursor": "$response.body#/next_cursor"}}}


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


@info_api.put("/<int:info_id>")
@answers(Answer(200, "the stored row", schema=InfoOut, headers=ETAG), 400, 404, PRECONDITION,
         413, 415, 503)
@validate_body(InfoPut)
async def replace_info(info_id: int, data: InfoPut) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Replace a row's name and money; 200 with the stored row and its new ETag.

    With `If-Match`, only while the row still has that ETag (else 412)."""
    expected = await _if_match_row(info_id)
    row = await update_info(current_app, current_store(), info_id, data.name, data.money,
                            expected=expected)
    return await _row_with_etag(row)


@info_api.patch("/<int:info_id>")
@answers(Answer(200, "the stored row", schema=InfoOut, headers=ETAG), 400, 404, PRECONDITION,
         413, 415, 503)
@validate_body(InfoPatch)
async def patch_info(info_id: int, data: InfoPatch) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Change a row's name, money or both; 200 with the stored row and its new ETag.

    With `If-Match`, only while the row still has that ETag (else 412)."""
    expected = await _if_match_row(info_id)
    row = await update_info(current_app, current_store(), info_id, data.name, data.money,
                            expected=expected)
    return await _row_with_etag(row)


@info_api.delete("/<int:info_id>")
@answers(Answer(204, "deleted", None), 404, PRECONDITION, 503)
async def remove_info(info_id: int) -> tuple[str, int]:
    """Delete a row; 204. With `If-Match`, only while the row still has that ETag (else 412)."""
    expected = await _if_match_row(info_id)
    await delete_info(current_app, current_store(), info_id, expected=expected)
    return "", 204


@info_api.post("/bulk")
@answers(Answer(200, "every row's outcome, in the order sent", schema=BulkOut),
         400, 413, 415, 503)
@json_array_body(InfoIn, "a row as for POST /api/info; one that is not valid is answered "
                 "with status 400 in `results` and the other rows are still stored")
async def create_info_bulk() -> dict[str, Any]:
    """Insert a JSON array of rows (at most BULK_MAX_ROWS) in as few statements as the
    database allows; every row's outcome in order, one bad or taken row never stopping the
    others. What is answered 201 is stored."""
    items = await read_json_array()
    limit = current_app.config["BULK_MAX_ROWS"]
    if len(items) > limit:
        raise RequestEntityTooLarge(f"at most {limit} rows per request (BULK_MAX_ROWS); "
                                    f"this one has {len(items)}: split it")
    results: list[dict[str, Any] | None] = []
    rows: list[NewRow] = []
    for item in items:
        try:
            data = cast(InfoIn, validate_item(InfoIn, item))
        except (ValidationError, InvalidField) as error:
            results.append({"status": 400, "error": "invalid_request",
                            "fields": field_errors(error)})
            continue
        results.append(None)
        rows.append((data.id, data.name, data.money))
    outcomes = iter(await insert_many_info(current_app, current_store(), rows) if rows else [])
    return {"results": [result if result is not None else _bulk_result(next(outcomes))
                        for result in results]}


def _bulk_result(outcome: InfoRow | StoreError) -> dict[str, Any]:
    if isinstance(outcome, InfoRow):
        return {"status": 201, "id": outcome.id}
    if isinstance(outcome, DuplicateId):
        return {"status": 409, "id": outcome.id, "error": "duplicate_id",
                "message": str(outcome)}
    return {"status": 503, "error": "database_unavailable", "message": str(outcome)}


@info_api.errorhandler(NoSuchRow)
async def no_such_row(error: NoSuchRow) -> Response:
    return error_response(404, "not_found", str(error))


@info_api.errorhandler(RowChanged)
async def row_changed(error: RowChanged) -> Response:
    return error_response(412, "precondition_failed", _PRECONDITION_FAILED)


_PRECONDITION_FAILED = ("If-Match does not name the row's current ETag: it changed since it "
                        "was read; read it again")


async def row_etag(row: InfoRow) -> str:
    """The ETag `GET /api/info/<id>` sends for `row`: the cache's strong ETag of the very
    response `read_info` makes of it (status, type, encoding, body)."""
    response = await current_app.make_response(row.to_json())
    assert isinstance(response, Response)  # a dict always makes Quart's own Response
    body = await response.get_data(as_text=False)
    return strong_etag(response.status_code, response.headers.get("Content-Type"),
                       response.headers.get("Content-Encoding"), body)


async def _if_match_row(info_id: int) -> InfoRow | None:
    """The row as read now when the request's `If-Match` names its ETag; None without
    `If-Match` (or with `*`). The change is then made only while the row is still this one
    (compare-and-set in the store), so a check that passed here cannot go stale."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    tags = parse_etags(header)
    if tags.star_tag:
        return None  # any current row: the change's own 404 covers "none"
    row = await current_store().get(info_id)
    if row is None:
        raise NoSuchRow(info_id)
    if not tags.contains(unquote_etag(await row_etag(row))[0] or ""):
        raise PreconditionFailed(_PRECONDITION_FAILED)
    return row


async def _row_with_etag(row: InfoRow) -> tuple[dict[str, Any], int, dict[str, str]]:
    return row.to_json(), 200, {"ETag": await row_etag(row)}
