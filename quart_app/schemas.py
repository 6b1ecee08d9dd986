"""The shapes of the info API's requests and responses (pydantic; documented by quart-schema)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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
