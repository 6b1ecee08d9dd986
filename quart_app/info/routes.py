"""The info API: insert a row (or many), read one, list them newest first, update, delete.

The reads are cached views (`cache.cached`); a change invalidates what it makes stale
(`quart_app.info.invalidation`, whose receivers run before the change is answered).
Updates and deletes honour `If-Match` with the strong ETag a read of the row sends.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from quart import Blueprint, Response, current_app, request, url_for
from werkzeug.exceptions import (
    NotFound,
    PreconditionFailed,
    RequestEntityTooLarge,
)
from werkzeug.http import parse_etags, unquote_etag

from ..cache.validators import strong_etag
from ..changes import delete_info, insert_info, update_info
from ..db import InfoRow, NoSuchRow, RowChanged, current_store
from ..extensions import cache
from ..http_errors import error_response
from ..openapi import (
    BULK_RESULT_LINES,
    ETAG,
    LOCATION,
    NOT_MODIFIED,
    PRECONDITION,
    Answer,
    answers,
    json_array_body,
)
from ..openapi import error as error_answer
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
    JSON_TYPE,
    NDJSON_TYPE,
    check_media_type,
    invalid_field,
    read_json_array,
    validate_body,
    validate_query,
)
from .bulk import answer, load_array, load_ndjson, results

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
    return await _update(info_id, data.name, data.money)


@info_api.patch("/<int:info_id>")
@answers(Answer(200, "the stored row", schema=InfoOut, headers=ETAG), 400, 404, PRECONDITION,
         413, 415, 503)
@validate_body(InfoPatch)
async def patch_info(info_id: int, data: InfoPatch) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Change a row's name, money or both; 200 with the stored row and its new ETag.

    With `If-Match`, only while the row still has that ETag (else 412)."""
    return await _update(info_id, data.name, data.money)


async def _update(
    info_id: int, name: str | None, money: Decimal | None
) -> tuple[dict[str, Any], int, dict[str, str]]:
    expected = await _if_match_row(info_id)
    row = await update_info(current_app, current_store(), info_id, name, money,
                            expected=expected)
    return await _row_with_etag(row)


@info_api.delete("/<int:info_id>")
@answers(Answer(204, "deleted", None), 404, PRECONDITION, 503)
async def remove_info(info_id: int) -> tuple[str, int]:
    """Delete a row; 204. With `If-Match`, only while the row still has that ETag (else 412)."""
    expected = await _if_match_row(info_id)
    await delete_info(current_app, current_store(), info_id, expected=expected)
    return "", 204


TOO_MANY_ROWS = error_answer(
    413, "more rows than BULK_MAX_ROWS (JSON) or BULK_MAX_NDJSON_ROWS (NDJSON: the rows before "
    "the limit are stored, and `results` lists their outcomes), or a JSON body over "
    "MAX_CONTENT_LENGTH")


@info_api.post("/bulk")
@answers(Answer(200, "every row's outcome, in the order sent", schema=BulkOut,
                also={NDJSON_TYPE: BULK_RESULT_LINES}),
         400, TOO_MANY_ROWS, 415, 503)
@json_array_body(InfoIn, "a row as for POST /api/info; one that is not valid is answered "
                 "with status 400 in `results` and the other rows are still stored",
                 ndjson=True)
async def create_info_bulk() -> Response:
    """Insert many rows: a JSON array (at most BULK_MAX_ROWS), or NDJSON, one row per line
    (at most BULK_MAX_NDJSON_ROWS, streamed: not bounded by MAX_CONTENT_LENGTH), in as few
    statements as the database allows. Every row's outcome in order, one bad or taken row
    never stopping the others; what is answered 201 is stored. `Accept:
    application/x-ndjson` answers one result object per line."""
    check_media_type(JSON_TYPE, NDJSON_TYPE)
    ndjson_out = request.accept_mimetypes.best_match(
        [JSON_TYPE, NDJSON_TYPE], default=JSON_TYPE) == NDJSON_TYPE
    config = current_app.config
    if request.mimetype == NDJSON_TYPE:
        limit = config["BULK_MAX_NDJSON_ROWS"]
        outcomes, over = await load_ndjson(current_app, current_store(), limit,
                                           config["MAX_CONTENT_LENGTH"])
        if over:
            return error_response(
                413, "request_entity_too_large",
                f"at most {limit} rows per NDJSON load (BULK_MAX_NDJSON_ROWS): the first "
                f"{limit} were read, and `results` gives their outcomes (those answered 201 "
                "are stored); nothing after them was stored: send the rest again",
                results=results(outcomes))
    else:
        items = await read_json_array()
        limit = config["BULK_MAX_ROWS"]
        if len(items) > limit:
            raise RequestEntityTooLarge(f"at most {limit} rows per request (BULK_MAX_ROWS); "
                                        f"this one has {len(items)}: split it")
        outcomes = await load_array(current_app, current_store(), items)
    response = answer(outcomes, ndjson=ndjson_out)
    response.vary.add("Accept")
    return response


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
