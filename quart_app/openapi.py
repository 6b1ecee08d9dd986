"""The OpenAPI document (`/api/openapi.json`): quart-schema's, completed into the contract.

quart-schema documents only the models a view declares: an operation without one gets
`responses: {}` (an invalid document), and it knows nothing of the JSON error bodies, of a
form accepted beside JSON, nor of pages that answer text or HTML. Each view says what it
answers with `answers(...)`, next to its route; `validation.validate_body`/`validate_query`
record their models; the provider here writes all of it down. Tests validate the served
document and run schemathesis against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from quart_schema import DataSource, OpenAPIProvider
from werkzeug.routing import Rule

from .validation import (
    BODY_MODEL_ATTRIBUTE,
    FORM_TYPE,
    JSON_TYPE,
    NDJSON_TYPE,
    QUERY_MODEL_ATTRIBUTE,
)

ANSWERS_ATTRIBUTE = "_quart_app_answers"
ARRAY_BODY_ATTRIBUTE = "_quart_app_array_body"

T = TypeVar("T", bound=Callable[..., Any])

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "a stable code, e.g. invalid_request"},
        "message": {"type": "string", "description": "what went wrong, for a person"},
        "fields": {
            "type": "array",
            "description": "400 and 415: every bad field (or header), with why",
            "items": {
                "type": "object",
                "required": ["field", "reason"],
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
        "request_id": {"type": "string"},
    },
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again",
                               "schema": {"type": "integer", "minimum": 1}}}
LOCATION = {"Location": {"description": "the URL of the resource", "schema": {"type": "string"}}}
ETAG = {"ETag": {"description": "the row's strong ETag, for If-Match",
                 "schema": {"type": "string"}}}

#: What each error status means, wherever an operation answers it.
ERRORS = {
    400: "invalid input: `fields` names every bad field and why",
    404: "no such row or resource",
    409: "the id exists already; nothing changed",
    412: "If-Match did not name the row's current ETag; nothing changed",
    413: "the body is larger than MAX_CONTENT_LENGTH",
    415: "the body is neither JSON nor a form, or not in UTF-8",
    503: "the database (or, with CACHE_IGNORE_ERRORS = false, the cache) is unavailable",
}


@dataclass(frozen=True)
class Answer:
    """One status an operation answers, with its body's media type and schema."""

    status: int
    description: str
    media_type: str | None = "application/json"
    schema: dict[str, Any] | type[BaseModel] | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    #: OpenAPI links: how a value in this answer feeds another operation.
    links: dict[str, Any] = field(default_factory=dict)
    #: The same answer in other media types, chosen by `Accept`: media type -> Media Type
    #: Object.
    also: dict[str, dict[str, Any]] = field(default_factory=dict)


def error(status: int, description: str | None = None) -> Answer:
    headers = RETRY_AFTER if status == 503 else {}
    return Answer(status, description or ERRORS[status], schema=ERROR_REF, headers=headers)


def text(status: int, description: str, media_type: str = "text/html") -> Answer:
    # Quart answers a returned str as text/html, as Flask does for the tutorial.
    return Answer(status, description, media_type, {"type": "string"})


#: A change refused because If-Match named another version of the row.
PRECONDITION = 412

#: A cached view's answer to an `If-None-Match` naming its current ETag.
NOT_MODIFIED = Answer(304, "not modified: If-None-Match named the current ETag", None)


#: A bulk load's results as NDJSON (`Accept: application/x-ndjson`). OpenAPI 3.1 has no schema
#: for one line of a stream (3.2's `itemSchema`): the body is text, each line a BulkResult.
BULK_RESULT_LINES = {
    "schema": {"type": "string",
               "description": "one BulkResult object per line, in the order the rows were sent"},
    "x-item-schema": {"$ref": "#/components/schemas/BulkResult"},
}


def json_array_body(
    model: type[BaseModel], description: str, *, ndjson: bool = False
) -> Callable[[T], T]:
    """Document a body that is a JSON array of `model` items, each judged on its own (an
    invalid item is part of the answer, not a refusal of the request); with `ndjson`, also
    as NDJSON, one item per line."""

    def decorator(function: T) -> T:
        setattr(function, ARRAY_BODY_ATTRIBUTE, (model, description, ndjson))
        return function

    return decorator


def answers(*entries: Answer | int) -> Callable[[T], T]:
    """Document what a view answers; a bare status is one of the JSON errors of `ERRORS`."""
    documented = [entry if isinstance(entry, Answer) else error(entry) for entry in entries]

    def decorator(function: T) -> T:
        setattr(function, ANSWERS_ATTRIBUTE,
                [*getattr(function, ANSWERS_ATTRIBUTE, []), *documented])
        return function

    return decorator


class Provider(OpenAPIProvider):
    """quart-schema's provider, plus bodies in both media types and every documented answer."""

    def schema(self) -> dict[str, Any]:
        document = super().schema()
        document["components"]["schemas"]["Error"] = ERROR_SCHEMA
        return document

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        paths, components = super().build_paths(rule)
        function = self._app.view_functions[rule.endpoint]
        body_model = getattr(function, BODY_MODEL_ATTRIBUTE, None)
        query_model = getattr(function, QUERY_MODEL_ATTRIBUTE, None)
        for operations in paths.values():
            for method, operation in operations.items():
                # quart-schema copies one operation per method shallowly: build anew.
                operation = operations[method] = dict(operation)
                operation["parameters"] = list(operation["parameters"])
                if query_model is not None:
                    parameters, definitions = self._query_parameters(query_model)
                    operation["parameters"].extend(parameters)
                    components.update(definitions)
                if body_model is not None:
                    operation["requestBody"], definitions = self._body(body_model)
                    components.update(definitions)
                array_body = getattr(function, ARRAY_BODY_ATTRIBUTE, None)
                if array_body is not None:
                    operation["requestBody"], definitions = self._array_body(*array_body)
                    components.update(definitions)
                responses = dict(operation["responses"])
                for answer in getattr(function, ANSWERS_ATTRIBUTE, []):
                    responses[str(answer.status)], definitions = self._response(answer)
                    components.update(definitions)
                operation["responses"] = responses
        return paths, components

    def _query_parameters(
        self, model: type[BaseModel]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        parameters, definitions = self.build_querystring_parameters(model)
        required = set(model.model_json_schema().get("required", []))
        for parameter in parameters:
            parameter["schema"] = _not_null(parameter["schema"])
            parameter["required"] = parameter["name"] in required
        return parameters, definitions

    def _body(self, model: type[BaseModel]) -> tuple[dict[str, Any], dict[str, Any]]:
        body, definitions = self.build_request_body(model, DataSource.JSON)
        schema = body["content"][JSON_TYPE]["schema"]
        # The same fields either way; in a form every value is text (`"5"` for 5), and a
        # form cannot say null: an optional field is left out.
        form = {**schema, "properties": {name: _not_null(property_schema) for name, property_schema
                                         in schema.get("properties", {}).items()}}
        content = {JSON_TYPE: {"schema": schema}, FORM_TYPE: {"schema": form}}
        return {"required": True, "content": content}, definitions

    def _array_body(
        self, model: type[BaseModel], description: str, ndjson: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        body, definitions = self.build_request_body(model, DataSource.JSON)
        item = body["content"][JSON_TYPE]["schema"]
        # Any value is accepted as an item: one that is not a valid row gets status 400 in
        # the answer, and the other rows are still stored.
        schema = {"type": "array", "maxItems": self._app.config["BULK_MAX_ROWS"],
                  "items": {"anyOf": [item, {}], "description": description}}
        content: dict[str, Any] = {JSON_TYPE: {"schema": schema}}
        if ndjson:
            # Text to OpenAPI 3.1 (see BULK_RESULT_LINES); every line is judged on its own.
            rows = self._app.config["BULK_MAX_NDJSON_ROWS"]
            content[NDJSON_TYPE] = {
                "schema": {"type": "string", "description": (
                    f"one item per line, as in the JSON array: {description}. A line that is "
                    "not JSON (or not UTF-8) is that row's 400; blank lines are skipped. At "
                    f"most {rows} rows (BULK_MAX_NDJSON_ROWS); streamed, so not bounded by "
                    "MAX_CONTENT_LENGTH (but each line is)")},
                "x-item-schema": item,
            }
        return {"required": True, "content": content}, definitions

    def _response(self, answer: Answer) -> tuple[dict[str, Any], dict[str, Any]]:
        definitions: dict[str, Any] = {}
        response: dict[str, Any] = {"description": answer.description}
        schema = answer.schema
        if isinstance(schema, type):
            built, definitions = self.build_response_object(schema, None)
            schema = built["content"]["application/json"]["schema"]
        if answer.media_type is not None:
            response["content"] = {answer.media_type: {"schema": schema or {}}, **answer.also}
        if answer.headers:
            response["headers"] = answer.headers
        if answer.links:
            response["links"] = answer.links
        return response, definitions



def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A field's schema without `null`, for text (a form, a query string): left out instead."""
    rest = {key: value for key, value in schema.items()
            if key != "anyOf" and not (key == "default" and value is None)}
    branches = [branch for branch in schema.get("anyOf", []) if branch != {"type": "null"}]
    if len(branches) == 1:
        return {**rest, **branches[0]}
    return {**rest, "anyOf": branches} if branches else rest
