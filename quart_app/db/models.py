"""The row type the store hands out."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class InfoRow:
    """One row of the tutorial's `info` table: the id, a name and an amount of money."""

    id: int
    name: str
    money: Decimal

    def to_json(self) -> dict[str, int | str]:
        """JSON-ready dict; money is a string with exactly two places, never a float."""
        return {"id": self.id, "name": self.name, "money": f"{self.money.quantize(CENT):f}"}
