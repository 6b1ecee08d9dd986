"""The shapes of the info API's requests and responses (pydantic; documented by quart-schema).

What is accepted is said plainly and the rest refused, because Python is generous where a
client should not rely on it: `int()` and `Decimal()` read `"1_000"`, `"\u0665"` (Arabic-Indic
five) and fullwidth digits, and pydantic reads `true` as the id 1. Here an id is a JSON
integer (`5.0` is the same number to JSON and to JSON Schema's "integer", so it is read as 5;
`5.5` is refused), or in a form or query string ASCII digits (`"5"`, `"5.0"`); money is a JSON
number or a decimal written with ASCII digits; a name has no control characters. The values
of forms and query strings are all text, so the validators are told (`context={"text":
True}`) to read digits in text; a JSON body must use JSON's own types.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

# The fields' limits are the store's, so what is accepted here is what the store keeps.
from .db.store import (
    MAX_ID,  # ids a client may choose; the store assigns beyond them
    MAX_MONEY,
    MAX_NAME_LENGTH,
    MIN_MONEY,
)

MAX_PAGE = 100

WHOLE_TEXT = re.compile(r"[0-9]+(?:\.0+)?")
MONEY_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# Longer digit strings are out of every range here, and int() of 4,300+ digits raises.
MAX_DIGITS = 1000
# Cc: C0, DEL and C1 controls (NUL among them); Cs: lone surrogates, which no UTF-8
# column can store.
REFUSED_CATEGORIES = {"Cc", "Cs"}
_PRINTABLE = r"[^\u0000-\u001f\u007f-\u009f]"
#: The JSON Schema of a name: a non-space character, and no control characters.
NAME_PATTERN = rf"^{_PRINTABLE}*[^\s\u0000-\u001f\u007f-\u009f]{_PRINTABLE}*$"
_MONEY_DIGITS = len(f"{MAX_MONEY:f}".partition(".")[0])
#: Money as text: what `_decimal` reads and the range (MIN_MONEY is 0) and places allow.
MONEY_PATTERN = rf"^0*[0-9]{{1,{_MONEY_DIGITS}}}(\.[0-9]{{1,2}}0*)?$"


def describe(value: Any) -> str:
    """A value's JSON type, as a person reading the API's documentation would name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction or exponent"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _reads_text(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("text"))


def _whole_number(value: Any, info: ValidationInfo) -> Any:
    # JSON (and JSON Schema's "integer") does not tell 5.0 from 5: both are read as 5.
    if isinstance(value, str) and _reads_text(info):
        if not WHOLE_TEXT.fullmatch(value):
            raise PydanticCustomError(
                "whole_number", "expected a whole number written with the digits 0-9")
        digits = value.partition(".")[0]
        if len(digits) > MAX_DIGITS:
            raise PydanticCustomError("whole_number", "more than {digits} digits",
                                      {"digits": MAX_DIGITS})
        return int(digits)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError(
            "whole_number", "expected a whole number (a JSON integer such as 5), got {kind}",
            {"kind": describe(value)})
    return value


def _decimal(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, str):
        if not MONEY_TEXT.fullmatch(value):
            raise PydanticCustomError(
                "decimal_text", "expected a decimal amount written with the digits 0-9 and "
                "at most one point, such as \"588\" or \"12.05\"")
        return Decimal(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(
            "decimal_type", "expected a decimal amount (a number such as 588, or a string "
            "such as \"12.05\"), got {kind}", {"kind": describe(value)})
    if isinstance(value, float):
        # Through its shortest decimal text: 0.1 is Decimal("0.1"), not 0.1000000000000000055...
        return Decimal(repr(value))
    return Decimal(value)


def _positive_zero(value: Decimal) -> Decimal:
    # -0 is a valid amount (>= 0) that the database stores as 0.00; answer what is stored.
    return value.copy_abs() if value == 0 else value


def _printable(value: str) -> str:
    for position, character in enumerate(value):
        if unicodedata.category(character) in REFUSED_CATEGORIES:
            raise PydanticCustomError(
                "control_character",
                "contains the control character U+{code} at position {position}",
                {"code": f"{ord(character):04X}", "position": position})
    return value


def _text(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("text_type", "expected text (a string), got {kind}",
                                  {"kind": describe(value)})
    return value


# The constraints before the validator: after it, pydantic would check the length before
# stripping (and accept "   ").
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                        max_length=MAX_NAME_LENGTH),
                 BeforeValidator(_text),
                 AfterValidator(_printable),
                 WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH,
                                 "pattern": NAME_PATTERN,
                                 "description": f"1 to {MAX_NAME_LENGTH} characters after "
                                                "trimming whitespace; no control characters"})]
# Constraints before the validators, so that the JSON Schema says them in its own words.
Id = Annotated[int, Field(gt=0, le=MAX_ID), BeforeValidator(_whole_number)]
Money = Annotated[Decimal, BeforeValidator(_decimal),
                  Field(ge=MIN_MONEY, le=MAX_MONEY, max_digits=12, decimal_places=2,
                        allow_inf_nan=False),
                  AfterValidator(_positive_zero),
                  WithJsonSchema({"anyOf": [
                      {"type": "number", "minimum": float(MIN_MONEY),
                       "maximum": float(MAX_MONEY), "multipleOf": 0.01},
                      {"type": "string", "pattern": MONEY_PATTERN}],
                      "description": f"a decimal, {MIN_MONEY} to {MAX_MONEY}, at most two "
                                     "places"})]


class InfoIn(BaseModel):
    """A row to insert. `id` is optional: the store assigns one when it is left out."""

    model_config = ConfigDict(extra="forbid")

    id: Id | None = None
    name: Name
    money: Money


class InfoOut(BaseModel):
    id: int
    name: str
    money: str = Field(description="decimal string with two places, e.g. \"588.00\"")


class InfoPage(BaseModel):
    items: list[InfoOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next, older page")


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: Annotated[int, Field(ge=1, le=MAX_PAGE), BeforeValidator(_whole_number)] = 20
    cursor: Annotated[str | None, WithJsonSchema(
        {"type": "string", "description": "next_cursor of the previous page"})] = None


class LoginForm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    username: Name


class InfoPut(BaseModel):
    """A row's new content (PUT): both fields, as for an insert; the URL names the id."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    money: Money


def _patch_schema(schema: dict[str, Any]) -> None:
    """As documented: at least one field, and a field is given a value or left out (no null)."""
    schema["minProperties"] = 1
    for field_schema in schema.get("properties", {}).values():
        branches = [branch for branch in field_schema.pop("anyOf", [])
                    if branch != {"type": "null"}]
        if len(branches) == 1:
            field_schema.update(branches[0])
        elif branches:
            field_schema["anyOf"] = branches
        field_schema.pop("default", None)


class InfoPatch(BaseModel):
    """Part of a row's content (PATCH): name, money or both; what is left out is kept."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_patch_schema)

    name: Name | None = None
    money: Money | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in ("name", "money"):
                if name in data and data[name] is None:
                    raise PydanticCustomError(
                        "null_field", "must not be null: leave the field out to keep its value")
        return data

    @model_validator(mode="after")
    def _changes_something(self) -> InfoPatch:
        if self.name is None and self.money is None:
            raise ValueError("give name, money or both")
        return self


class ErrorOut(BaseModel):
    error: str = Field(description='what went wrong, e.g. "not_found", "precondition_failed"')
    message: str


class FieldProblem(BaseModel):
    field: str
    reason: str


class BulkResult(BaseModel):
    """One row's outcome in a bulk load, in the order the rows were sent."""

    status: int = Field(description="201 stored, 400 invalid, 409 id taken, 503 not known")
    id: int | None = Field(None, description="the stored row's id (201), or the taken id (409)")
    error: str | None = None
    message: str | None = None
    fields: list[FieldProblem] | None = Field(None, description="every bad field (400)")


class BulkOut(BaseModel):
    results: list[BulkResult]
