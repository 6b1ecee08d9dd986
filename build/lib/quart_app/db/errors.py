"""What the storage layer raises; the routes turn these into HTTP answers.

A `StoreUnavailable` message is shown to clients, so it never names a host, a port or a
file; what the driver said (which may) travels in `detail`, for the log and for `DEBUG`.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class for every error an `InfoStore` raises on purpose."""


class DuplicateId(StoreError):
    """A row with this id already exists; nothing was written."""

    def __init__(self, id: int) -> None:
        self.id = id
        super().__init__(f"a row with id {id} already exists")


class RowRefused(StoreError):
    """The database refused a value of the row (it does not fit its column); nothing was
    written. The client sent it, so it is the client's to fix (a 400 naming `field`)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class StoreUnavailable(StoreError):
    """The database cannot serve the request now; retrying after `retry_after` seconds may work.

    `detail` is the driver's own account (hosts, paths): logged with the request id by
    the HTTP layer, shown to clients only with `DEBUG`. `logged` says it was logged
    already (an outage is logged once when it starts, not once per request).
    """

    def __init__(
        self, message: str, *, retry_after: int = 3, detail: str | None = None,
        logged: bool = False,
    ) -> None:
        self.retry_after = retry_after
        self.detail = detail
        self.logged = logged
        super().__init__(message)

    def for_client(self, debug: bool) -> str:
        """The message a client may see: with the driver's detail only in debug mode."""
        message = str(self)
        return f"{message} ({self.detail})" if debug and self.detail else message


class StoreRefused(StoreUnavailable):
    """The database refused a statement for a reason of its own (a time limit, a lock wait,
    a full disk, no ids left to assign): nothing was stored, and the connection is fine."""


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
