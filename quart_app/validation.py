"""Reading request bodies and query strings strictly, validating them, and readable 400s.

quart-schema validates one body source per route, and its loaders build a pydantic
TypeAdapter on every request (a large part of a small insert's cost, profiled). So the
decorators here validate with the model's own `model_validate`, take a JSON or a form body,
and record the model for the OpenAPI document (`quart_app.openapi`).

The bytes are read here rather than by Quart/werkzeug because their readers are lenient
where a client should hear "no": invalid UTF-8 becomes U+FFFD or `%FF` text, a declared
charset is ignored, a repeated field silently keeps one value, and `json.loads` recurses
(thousands of `[` are a RecursionError, a 500). Every failure is a 400 naming the field and
why, or a 415 for a media type or charset that is not accepted.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable
from functools import wraps
from typing import Any
from urllib.parse import unquote_plus

from pydantic import BaseModel, ValidationError
from pydantic_core import from_json
from quart import Quart, Response, request
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import UnsupportedMediaType

from .db import RowRefused
from .http_errors import error_response
from .schemas import describe

FORM_TYPE = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"
#: Newline-delimited JSON: one value per line (bulk loads larger than one body).
NDJSON_TYPE = "application/x-ndjson"
UTF8_NAMES = {"utf-8", "utf8"}
#: Attribute on a view: the model its body is validated against (read by quart_app.openapi).
BODY_MODEL_ATTRIBUTE = "_quart_app_body_model"
#: Attribute on a view: the model its query string is validated against.
QUERY_MODEL_ATTRIBUTE = "_quart_app_query_model"

View = Callable[..., Any]


class InvalidField(ValueError):
    """A value the models cannot judge alone (a cursor the store does not recognise)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class UnsupportedBody(UnsupportedMediaType):
    """A body in a media type or charset this API does not read (415)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def invalid_field(field: str, reason: str) -> RequestSchemaValidationError:
    return RequestSchemaValidationError(InvalidField(field, reason))


def load(model_class: type[BaseModel], data: dict[str, Any], *, text: bool) -> BaseModel:
    """Validate `data`; `text` says its values are strings from a form or a query string."""
    try:
        return model_class.model_validate(data, context={"text": text})
    except ValidationError as error:
        raise RequestSchemaValidationError(error) from None


def validate_body(model_class: type[BaseModel]) -> Callable[[View], View]:
    """Validate a JSON or form body against `model_class`; the view gets it as `data=`."""

    def decorator(function: View) -> View:
        @wraps(function)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            body = await read_body()
            if isinstance(body, dict):
                data = load(model_class, body, text=False)
            else:
                data = load(model_class, single_values(body, model_class, "body"), text=True)
            return await function(*args, data=data, **kwargs)

        setattr(wrapper, BODY_MODEL_ATTRIBUTE, model_class)
        return wrapper

    return decorator


def validate_query(model_class: type[BaseModel]) -> Callable[[View], View]:
    """Validate the query string against `model_class`; the view gets it as `query_args=`."""

    def decorator(function: View) -> View:
        @wraps(function)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            fields = parse_urlencoded(request.query_string, "query string")
            query = single_values(fields, model_class, "query string")
            return await function(*args, query_args=load(model_class, query, text=True),
                                  **kwargs)

        setattr(wrapper, QUERY_MODEL_ATTRIBUTE, model_class)
        return wrapper

    return decorator


async def read_body() -> dict[str, Any] | list[tuple[str, str]]:
    """A JSON body's object, or a form's fields in order."""
    raw = await _raw_body(forms=True)
    if request.mimetype == FORM_TYPE:
        return parse_urlencoded(raw, "body")
    return parse_json_object(raw)


async def read_json_array() -> list[Any]:
    """A JSON body that must be an array (bulk loads); JSON only, no form."""
    value = parse_json(await _raw_body(forms=False), "a JSON array")
    if not isinstance(value, list):
        raise invalid_field("body", f"expected a JSON array [...], got {describe(value)}")
    return value


async def _raw_body(*, forms: bool) -> bytes:
    if forms:
        check_media_type(JSON_TYPE, FORM_TYPE)
    else:
        check_media_type(JSON_TYPE)
    raw: bytes = await request.get_data(cache=True, as_text=False, parse_form_data=False)
    return raw


def check_media_type(*accepted: str) -> None:
    """415 unless the body is one of the `accepted` media types (any JSON type for
    JSON_TYPE), in UTF-8."""
    mimetype = request.mimetype
    if not any(request.is_json if media_type == JSON_TYPE else mimetype == media_type
               for media_type in accepted):
        shown = mimetype or "no Content-Type"
        raise UnsupportedBody(f"{shown} is not accepted: send the body as "
                              f"{' or '.join(accepted)}")
    charset = request.mimetype_params.get("charset")
    if charset is not None and charset.strip('"').lower() not in UTF8_NAMES:
        raise UnsupportedBody(f"charset={charset} is not accepted: send the body in UTF-8")


async def ndjson_values(max_line: int) -> AsyncGenerator[Any, None]:
    """The value of each non-blank line of an NDJSON body, in order, or the `InvalidField`
    saying why that line is not JSON (a problem of that line only: the rest is still read).

    The body is streamed (`quart_app.request_body`), so only one line is held at a time; a
    line longer than `max_line` bytes is not kept but skipped to its end and reported.
    """
    pending = bytearray()
    overlong = False
    first = True
    async for data in request.body:
        *ended, rest = data.split(b"\n")
        for piece in ended:
            pending += piece
            if overlong or len(pending) > max_line:
                yield _overlong(max_line)
            elif (value := _ndjson_value(bytes(pending), first)) is not _BLANK:
                yield value
            pending.clear()
            overlong = False
            first = False
        pending += rest
        if len(pending) > max_line:
            overlong = True
            pending.clear()
    if overlong:
        yield _overlong(max_line)
    elif (value := _ndjson_value(bytes(pending), first)) is not _BLANK:
        yield value


_BLANK = object()


def _overlong(max_line: int) -> InvalidField:
    return InvalidField("body", f"the line is longer than {max_line} bytes (MAX_CONTENT_LENGTH)")


def _ndjson_value(line: bytes, first: bool) -> Any:
    if first:
        line = line.removeprefix(b"\xef\xbb\xbf")  # a BOM, as parse_json skips it
    if not line.strip():
        return _BLANK
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        return InvalidField("body", f"not valid UTF-8: byte 0x{line[error.start]:02x} at "
                            f"offset {error.start} of the line")
    try:
        return from_json(text, allow_inf_nan=False)
    except ValueError as error:
        return InvalidField("body", _json_reason(str(error)))


def parse_json(raw: bytes, expected: str = "a JSON object") -> Any:
    text = _utf8(raw, "body").removeprefix("\ufeff")  # RFC 8259 lets a parser skip a BOM
    if not text.strip():
        raise invalid_field("body", f"empty: send {expected}")
    try:
        return from_json(text, allow_inf_nan=False)
    except ValueError as error:
        raise invalid_field("body", _json_reason(str(error))) from None


def parse_json_object(raw: bytes) -> dict[str, Any]:
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise invalid_field("body", f"expected a JSON object {{...}}, got {describe(value)}")
    return value


def validate_item(model_class: type[BaseModel], item: Any) -> BaseModel:
    """One JSON value (e.g. a bulk load's row) against `model_class`; ValidationError if bad."""
    if not isinstance(item, dict):
        raise InvalidField("body", f"expected a JSON object {{...}}, got {describe(item)}")
    return model_class.model_validate(item, context={"text": False})


def _json_reason(message: str) -> str:
    # pydantic-core's parser (jiter) says where it stopped: "... at line 2 column 11".
    # It refuses more than 200 levels of nesting without recursing, unlike json.loads.
    if message.startswith("recursion limit exceeded"):
        where = message.removeprefix("recursion limit exceeded")
        return f"not valid JSON: nested more than 200 levels deep{where}"
    return f"not valid JSON: {message}"


def parse_urlencoded(raw: bytes, where: str) -> list[tuple[str, str]]:
    """`a=1&b=2` into [("a", "1"), ("b", "2")], decoding UTF-8 strictly."""
    fields = []
    for pair in _utf8(raw, where).split("&"):
        if not pair:
            continue
        encoded_name, _, encoded_value = pair.partition("=")
        name = _unquote(encoded_name, where, where)
        fields.append((name, _unquote(encoded_value, name, where)))
    return fields


def single_values(
    fields: list[tuple[str, str]], model_class: type[BaseModel], where: str
) -> dict[str, str]:
    """One value per name: a field the model reads may not be given twice (which one would
    count?); a name it does not know is left to the model (refused, or ignored)."""
    values: dict[str, str] = {}
    for name, value in fields:
        if name in values and name in model_class.model_fields:
            raise invalid_field(name, f"given more than once in the {where}; give it once")
        values.setdefault(name, value)
    return values


def _unquote(text: str, field: str, where: str) -> str:
    try:
        return unquote_plus(text, errors="strict")
    except UnicodeDecodeError:
        raise invalid_field(field, f"its percent-encoding in the {where} is not UTF-8") from None


def _utf8(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise invalid_field(
            where, f"not valid UTF-8: byte 0x{raw[error.start]:02x} at offset {error.start}"
        ) from None


DECIMAL_REPR = re.compile(r"Decimal\('([^']*)'\)")
REASONS = {
    "extra_forbidden": "unknown field",
    "missing": "required, but missing",
    # pydantic's own words name Python types ("Decimal('9999999999.99')"); these do not.
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "decimal_max_places": "at most {decimal_places} digits after the point",
    "decimal_max_digits": "at most {max_digits} digits",
    "decimal_whole_digits": "at most {whole_digits} digits before the point",
}


def field_errors(error: Exception) -> list[dict[str, str]]:
    """One {"field", "reason"} per problem, in pydantic's order."""
    if isinstance(error, InvalidField):
        return [{"field": error.field, "reason": error.reason}]
    if not isinstance(error, ValidationError):
        return [{"field": "body", "reason": str(error)}]
    problems = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "body"
        reason = REASONS.get(item["type"])
        context = {name: _plain(value) for name, value in item.get("ctx", {}).items()}
        problems.append({"field": location,
                         "reason": reason.format(**context) if reason else item["msg"]})
    return problems


def _plain(value: Any) -> str:
    # pydantic gives a Decimal bound as the text "Decimal('9999999999.99')".
    text = str(value)
    match = DECIMAL_REPR.fullmatch(text)
    return match.group(1) if match else text


def fields_response(status: int, error: str, problems: list[dict[str, str]]) -> Response:
    detail = "; ".join(f"{problem['field']}: {problem['reason']}" for problem in problems)
    return error_response(status, error, detail, fields=problems)


async def invalid_request(error: RequestSchemaValidationError) -> Response:
    return fields_response(400, "invalid_request", field_errors(error.validation_error))


async def unsupported_body(error: UnsupportedBody) -> Response:
    return fields_response(415, "unsupported_media_type",
                           [{"field": "Content-Type", "reason": error.reason}])


async def row_refused(error: RowRefused) -> Response:
    # A value the validation let through but the table cannot hold: the client's to fix.
    return fields_response(400, "invalid_request",
                           [{"field": error.field, "reason": error.reason}])


def register_validation_errors(app: Quart) -> None:
    app.register_error_handler(RequestSchemaValidationError, invalid_request)
    app.register_error_handler(RowRefused, row_refused)
    app.register_error_handler(UnsupportedBody, unsupported_body)
