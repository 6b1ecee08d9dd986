"""What the storage layer raises; the routes turn these into HTTP answers."""

from __future__ import annotations


class StoreError(Exception):
    """Base class for every error an `InfoStore` raises on purpose."""


class DuplicateId(StoreError):
    """A row with this id already exists; nothing was written."""

    def __init__(self, id: int) -> None:
        self.id = id
        super().__init__(f"a row with id {id} already exists")


class StoreUnavailable(StoreError):
    """The database cannot serve the request now; retrying after `retry_after` seconds may work."""

    def __init__(self, message: str, *, retry_after: int = 3) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class PoolExhausted(StoreUnavailable):
    """Every pooled connection is busy: `blocking` is false, or `acquire_timeout` passed."""

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message, retry_after=retry_after)


class RowChanged(StoreError):
    """The row is no longer the one the change was based on (`expected`); nothing was written."""

    def __init__(self, id: int) -> None:
        self.id = id
        super().__init__(f"the row with id {id} has changed since it was read")


class NoSuchRow(StoreError):
    """No row has this id: nothing to update or delete."""

    def __init__(self, id: int) -> None:
        self.id = id
        super().__init__(f"no info row with id {id}")
