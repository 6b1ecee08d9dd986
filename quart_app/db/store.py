"""The one interface the routes use, whichever database sits behind it."""

from __future__ import annotations

import asyncio
import base64
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from .errors import DuplicateId, RowChanged, StoreError, StoreUnavailable
from .models import CENT, InfoRow

#: Largest page `list_page` serves.
MAX_PAGE_SIZE = 1000
#: Largest id a client may choose (the tutorial's INT range). The column is 64-bit, so the ids
#: the store assigns, always above every id stored so far, go on after it: a client that
#: takes this one leaves 2**63 - 2**31 ids for the store, not none.
MAX_ID = 2**31 - 1
#: Largest id a row can have (BIGINT; SQLite's INTEGER).
MAX_ROW_ID = 2**63 - 1
# The limits of a row's fields, here because the table sets most of them; the API's schemas
# (schemas.py) import them, so what a request may send and what the store keeps are one rule.
#: Characters in a name (VARCHAR(64)).
MAX_NAME_LENGTH = 64
#: The range of money: DECIMAL(12, 2) holds ten digits before the point and two after; no
#: amount is negative (the API's rule, kept by every caller of the store).
MIN_MONEY = Decimal("0")
MAX_MONEY = Decimal("9999999999.99")

#: Rows per multi-row INSERT of `insert_many` (a statement's parameters stay well inside
#: SQLite's 32,766 and MariaDB's packet size).
BULK_CHUNK = 1000
#: Tries of an update without `expected` whose row others keep changing in between (each
#: failed try means another update won, so the row does progress).
_CHANGE_ATTEMPTS = 20

#: A row to insert: id (None: the store assigns one), name, money.
NewRow = tuple[int | None, str, Decimal]

_CURSOR_PREFIX = "s"


class InfoStore(ABC):
    """Rows of the `info` table, newest first.

    Every backend behaves alike: the same errors (`DuplicateId`, `StoreUnavailable`,
    `PoolExhausted`, `ValueError` for arguments the table cannot hold), the same ordering
    (insertion order, not id order) and money exact to the cent as `Decimal`.
    """

    @property
    @abstractmethod
    def display_url(self) -> str:
        """The database URL with any password masked, for logs and /stats."""

    @abstractmethod
    async def open(self) -> None:
        """Connect, create the schema if missing and open `mincached` connections.

        Never raises because the database is unreachable: it logs one warning and the store
        connects on first use instead. Other failures (a table of the wrong shape) raise
        `StoreError` with nothing left open.
        """

    @abstractmethod
    async def close(self) -> None:
        """Close every connection; later calls raise `StoreUnavailable` until `open()`."""

    @abstractmethod
    async def ensure_schema(self) -> None:
        """Create the database objects if missing (also done lazily by the first operation)."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the database answers a trivial query."""

    @abstractmethod
    async def insert(self, id: int | None, name: str, money: Decimal) -> InfoRow:
        """Store a row, committed before this returns, and give it back.

        `id` None lets the store pick the next id after the largest stored (past MAX_ID
        once a client took that one); a chosen id must be 1..MAX_ID.
        Raises `DuplicateId` when the id is taken and `RowRefused` when the database refuses
        a value (nothing written either way), `StoreRefused` when it refuses the statement
        for a reason of its own (nothing written; the connection is kept), and
        `StoreUnavailable` when the database cannot be reached; one raised after the
        statement was sent says in its message that the row may or may not be stored (the
        connection broke before the answer).
        """

    @abstractmethod
    async def get(self, id: int) -> InfoRow | None:
        """The row with this id, or None (also for ids no row can have)."""

    @abstractmethod
    async def list_page(self, limit: int, cursor: str | None) -> tuple[list[InfoRow], str | None]:
        """Up to `limit` rows, newest inserted first, after the position `cursor` names.

        Returns the rows and the cursor of the next page (None when there is none). The
        cursor is opaque; one that this store did not make raises `ValueError`.
        """

    @abstractmethod
    def stats(self) -> dict[str, int | float | str]:
        """Connection counters for /stats: at least size, in_use, idle, waiting, timeouts."""

    # --- changing rows: update, delete, bulk insert ------------------------------------------

    async def update(
        self, id: int, name: str | None = None, money: Decimal | None = None, *,
        expected: InfoRow | None = None,
    ) -> tuple[InfoRow, InfoRow] | None:
        """Change a row's name, money or both (None keeps the stored value); committed before
        this returns. Gives back ``(previous, row)``, or None when there is no row `id`.

        The change is a compare-and-set on the whole row, so `previous` is exactly the row it
        replaced. With `expected` the row is changed only while it still equals `expected`,
        else `RowChanged` (nothing written): two updates based on one read leave one winner.
        Without it, a row changed by someone else in between is read again and the change
        retried. Raises `ValueError` for values the table cannot hold.
        """
        if not is_row_id(id):
            return None
        for attempt in range(_CHANGE_ATTEMPTS):
            if attempt:
                # Jitter, so that writers that collided do not collide again in step.
                await asyncio.sleep(random.uniform(0, 0.001 * min(attempt, 10)))
            current = expected if expected is not None else await self.get(id)
            if current is None:
                return None
            # Only what changes is checked: a kept value is one the table holds already (a
            # table written by an older version or by hand may hold what is refused now).
            new_name = current.name if name is None else name
            if name is not None:
                check_name(name)
            new_money = current.money if money is None else check_money(money)
            row = InfoRow(id, new_name, new_money)
            if row == current:
                # Nothing to write, but the row must still be the one read (the read is the
                # atomic step); MariaDB would also count an unchanged row as not updated.
                now = await self.get(id)
                if now is None:
                    return None
                if now == current:
                    return current, current
            elif await self._replace(current, row):
                return current, row
            if expected is not None:
                if await self.get(id) is None:
                    return None
                raise RowChanged(id)
        raise StoreUnavailable(f"row {id} kept changing while it was updated", retry_after=1)

    async def delete(self, id: int, *, expected: InfoRow | None = None) -> InfoRow | None:
        """Remove row `id` in one statement and give back what it held; None when there was
        none. With `expected`, only while the row still equals it, else `RowChanged`."""
        if not is_row_id(id):
            return None
        row = await self._delete_row(id, expected)
        if row is None and expected is not None and await self.get(id) is not None:
            raise RowChanged(id)
        return row

    async def insert_many(self, rows: Sequence[NewRow]) -> list[InfoRow | StoreError]:
        """Insert `rows` in order with multi-row INSERTs (`BULK_CHUNK` rows per statement,
        each committed on its own) and give every row's outcome, in order: the stored
        `InfoRow`, or `DuplicateId` (that row only was skipped).

        Rows are stored as if inserted one by one in that order: an id the store assigns to
        an earlier row is taken for a later row that asks for it. A `StoreUnavailable`
        raised by the first statement is raised; by a later one, it is the outcome of every
        row not yet stored (their fate is unknown), the earlier chunks being committed.
        """
        checked = [(id, name, check_new_row(id, name, money)) for id, name, money in rows]
        outcomes: list[InfoRow | StoreError] = []
        for start in range(0, len(checked), BULK_CHUNK):
            chunk = checked[start:start + BULK_CHUNK]
            try:
                stored = await self._insert_rows(chunk)
            except StoreUnavailable as error:
                if not outcomes:
                    raise
                # Earlier chunks are committed: their outcomes stand, the rest share this.
                outcomes.extend([error] * (len(checked) - start))
                break
            outcomes.extend(_match_stored(chunk, stored))
        return outcomes

    @abstractmethod
    async def _replace(self, current: InfoRow, row: InfoRow) -> bool:
        """Write `row` in one statement where the stored row still equals `current`
        (name compared byte for byte); whether it did."""

    @abstractmethod
    async def _delete_row(self, id: int, expected: InfoRow | None) -> InfoRow | None:
        """Delete row `id` (only while it equals `expected`, if given) in one statement;
        the row deleted, or None."""

    @abstractmethod
    async def _insert_rows(self, rows: Sequence[NewRow]) -> list[InfoRow]:
        """Insert checked rows in one statement, skipping those whose id is taken; the rows
        stored, in the order they were inserted."""


def _match_stored(rows: Sequence[NewRow], stored: Sequence[InfoRow]) -> list[InfoRow | StoreError]:
    """Each row's outcome: the stored rows come back in insertion order, so walking both
    in step pairs them; a row the walk does not find was skipped as a duplicate."""
    outcomes: list[InfoRow | StoreError] = []
    position = 0
    for id, name, money in rows:
        found = stored[position] if position < len(stored) else None
        if (found is not None and (id is None or found.id == id)
                and found.name == name and found.money == money):
            outcomes.append(found)
            position += 1
        elif id is not None:
            outcomes.append(DuplicateId(id))
        else:
            outcomes.append(StoreError("the database did not store the row"))
    return outcomes


def check_new_row(id: int | None, name: str, money: Decimal) -> Decimal:
    """Refuse what the table cannot hold exactly; return money with exactly two places."""
    if id is not None:
        check_id(id)
    check_name(name)
    return check_money(money)


def check_name(name: str) -> None:
    """Refuse a name the table cannot hold."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"name is longer than {MAX_NAME_LENGTH} characters")
    name.encode("utf-8")  # lone surrogates would fail later, inside a transaction


def check_money(money: Decimal) -> Decimal:
    """Refuse an amount outside MIN_MONEY..MAX_MONEY or with more than two places; return
    it with exactly two places."""
    if not isinstance(money, Decimal):
        raise TypeError(f"money must be a Decimal, not {type(money).__name__}")
    if not money.is_finite():
        raise ValueError(f"money must be a finite amount, not {money}")
    if not MIN_MONEY <= money <= MAX_MONEY:
        raise ValueError(f"money must be from {MIN_MONEY} to {MAX_MONEY}")
    try:
        exact = money.quantize(CENT)
    except InvalidOperation:
        raise ValueError(f"money {money} cannot be stored exactly") from None
    if exact != money:
        raise ValueError(f"money {money} has more than two decimal places")
    return exact


def check_id(id: int) -> None:
    """Refuse ids outside the INT column's positive range."""
    if isinstance(id, bool) or not isinstance(id, int):
        raise TypeError(f"id must be an int, not {type(id).__name__}")
    if not 1 <= id <= MAX_ID:
        raise ValueError(f"id must be between 1 and {MAX_ID}")


def is_row_id(id: int) -> bool:
    """Whether a row can have this id (assigned ids go beyond MAX_ID); `TypeError` for a non-int."""
    if isinstance(id, bool) or not isinstance(id, int):
        raise TypeError(f"id must be an int, not {type(id).__name__}")
    return 1 <= id <= MAX_ROW_ID


def check_limit(limit: int) -> None:
    """Refuse page sizes outside 1..MAX_PAGE_SIZE."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int, not {type(limit).__name__}")
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}")


def encode_cursor(seq: int) -> str:
    """The opaque cursor for "rows inserted before the row with this sequence number"."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The sequence number inside a cursor from `encode_cursor`; `ValueError` otherwise."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, TypeError):
        raise ValueError("invalid cursor") from None
    digits = text[len(_CURSOR_PREFIX):]
    if not text.startswith(_CURSOR_PREFIX) or not digits.isdigit() or not digits.isascii():
        raise ValueError("invalid cursor")
    seq = int(digits)
    if not 1 <= seq <= MAX_ROW_ID or encode_cursor(seq) != cursor:
        raise ValueError("invalid cursor")
    return seq
