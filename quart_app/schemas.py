"""The shapes of the info API's requests and responses (pydantic; documented by quart-schema)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .db.store import MAX_ID  # ids a client may choose; the store assigns beyond them

MAX_MONEY = Decimal("9999999999.99")  # DECIMAL(12,2)
MAX_PAGE = 100

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Money = Annotated[Decimal, Field(ge=0, le=MAX_MONEY, max_digits=12, decimal_places=2,
                                 allow_inf_nan=False)]


class InfoIn(BaseModel):
    """A row to insert. `id` is optional: the store assigns one when it is left out."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[int, Field(gt=0, le=MAX_ID, strict=False)] | None = None
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

    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 20
    cursor: str | None = None


class LoginForm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    username: Name


class InfoPut(BaseModel):
    """A row's new content (PUT): both fields, as for an insert; the URL names the id."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    money: Money


class InfoPatch(BaseModel):
    """Part of a row's content (PATCH): name, money or both; what is left out is kept."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    money: Money | None = None

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
