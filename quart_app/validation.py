"""Request validation with pydantic models, documented by quart-schema, and readable 400s.

quart-schema validates one body source per route, and its loaders build a pydantic
TypeAdapter on every request (a large part of a small insert's cost, profiled). So the
decorators here validate with the model's own `model_validate`, take a JSON or a form body,
and record the model with quart-schema's `document_*` helpers for the OpenAPI document.
Every validation failure becomes a 400 whose body names each bad field and why.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from pydantic import BaseModel, ValidationError
from quart import Quart, Response, jsonify, request
from quart_schema import (
    DataSource,
    RequestSchemaValidationError,
    document_querystring,
    document_request,
)
from werkzeug.exceptions import UnsupportedMediaType

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

View = Callable[..., Any]


def load(model_class: type[BaseModel], data: Any) -> BaseModel:
    try:
        return model_class.model_validate(data)
    except ValidationError as error:
        raise RequestSchemaValidationError(error) from None


def validate_body(model_class: type[BaseModel]) -> Callable[[View], View]:
    """Validate a JSON or form body against `model_class`; the view gets it as `data=`."""

    def decorator(function: View) -> View:
        @wraps(function)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            data = load(model_class, await _body_data())
            return await function(*args, data=data, **kwargs)

        return document_request(model_class, source=DataSource.JSON)(wrapper)

    return decorator


def validate_query(model_class: type[BaseModel]) -> Callable[[View], View]:
    """Validate the query string against `model_class`; the view gets it as `query_args=`."""

    def decorator(function: View) -> View:
        @wraps(function)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            query = {key: values if len(values) > 1 else values[0]
                     for key, values in request.args.lists()}
            return await function(*args, query_args=load(model_class, query), **kwargs)

        return document_querystring(model_class)(wrapper)

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
