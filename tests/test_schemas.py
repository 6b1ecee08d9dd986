"""The API's field rules (schemas.py) and the store's (db/store.py) are one rule."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from pydantic import ValidationError

from quart_app.db.store import check_new_row
from quart_app.schemas import InfoIn


def _accepts(read: Callable[[], object]) -> bool:
    try:
        read()
    except (ValueError, TypeError, ValidationError):
        return False
    return True


@pytest.mark.parametrize("money", [
    -9999999999.99, -0.01, -0.0, 0, 0.01, 588, 9999999999.99, 10000000000, 10000000000.01,
    0.001,
])
def test_the_api_accepts_the_money_the_store_keeps(money: float) -> None:
    api = _accepts(lambda: InfoIn.model_validate({"name": "a", "money": money}))
    # As the schema reads a JSON number: through its shortest decimal text.
    store = _accepts(lambda: check_new_row(None, "a", Decimal(repr(money))))
    assert api == store


@pytest.mark.parametrize("length", [1, 64, 65])
def test_the_api_accepts_the_names_the_store_keeps(length: int) -> None:
    name = "n" * length
    api = _accepts(lambda: InfoIn.model_validate({"name": name, "money": 1}))
    store = _accepts(lambda: check_new_row(None, name, Decimal(1)))
    assert api == store
