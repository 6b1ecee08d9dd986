"""Request validation on top of quart-schema: JSON or form bodies, and readable 400s.

quart-schema validates one body source per route; the info API takes JSON or a form, so
`validate_body` picks by content type and then loads the model exactly as quart-schema does
(same exception, same OpenAPI entry). Every validation failure becomes a 400 whose body names
each bad field and why.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from pydantic import ValidationError
from quart import Quart, Response, current_app, jsonify, request
from quart_schema import DataSource, RequestSchemaValidationError
from quart_schema.conversion import model_load
from quart_schema.validation import QUART_SCHEMA_REQUEST_ATTRIBUTE
from werkzeug.exceptions import UnsupportedMediaType

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def validate_body(model_class: type[Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Like quart-schema's `validate_request`, for a JSON or a form body; passes `data=`."""

    def decorator(function: Callable[..., Any]) -> Callable[..., Any]:
        setattr(function, QUART_SCHEMA_REQUEST_ATTRIBUTE, (model_class, DataSource.JSON))

        @wraps(function)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            data = await _body_data()
            model = model_load(data, model_class, RequestSchemaValidationError)
            return await current_app.ensure_async(function)(*args, data=model, **kwargs)

        return wrapper

    return decorator


async def _body_data() -> Any:
    if request.mimetype in FORM_TYPES:
        form = await request.form
        return {key: form[key] for key in form}
    if request.is_json:
        return await request.get_json()
    raise UnsupportedMediaType("send the body as application/json or a form")


class InvalidField(ValueError):
    """A value the models cannot judge alone (a cursor the store does not recognise)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def invalid_field(field: str, reason: str) -> RequestSchemaValidationError:
    return RequestSchemaValidationError(InvalidField(field, reason))


def field_errors(error: Exception) -> list[dict[str, str]]:
    """One {"field", "reason"} per problem, in pydantic's order."""
    if isinstance(error, InvalidField):
        return [{"field": error.field, "reason": error.reason}]
    if not isinstance(error, ValidationError):
        return [{"field": "body", "reason": str(error)}]
    problems = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "body"
        reason = "unknown field" if item["type"] == "extra_forbidden" else item["msg"]
        problems.append({"field": location, "reason": reason})
    return problems


async def invalid_request(error: RequestSchemaValidationError) -> Response:
    problems = field_errors(error.validation_error)
    names = ", ".join(problem["field"] for problem in problems)
    response = jsonify(
        {"error": "invalid_request", "message": f"invalid: {names}", "fields": problems}
    )
    response.status_code = 400
    return response


def register_validation_errors(app: Quart) -> None:
    app.register_error_handler(RequestSchemaValidationError, invalid_request)
