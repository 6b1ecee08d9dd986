"""How receivers are connected and run, for quart_app's signals and Quart's built-in ones.

blinker alone runs receivers in no fixed order (it keeps them in sets), holds them weakly (a
receiver defined inside a function vanishes) and lets one that raises skip the rest and, on a
built-in signal, turn the request into a 500. So for each (signal, app) one fan-out function
is connected to blinker, and it runs this app's receivers:
- in the order they were connected;
- each guarded: an exception is logged with the receiver's name, and the others still run
  (Django's send_robust), so no receiver can fail the request or the caller;
- inline (awaited before `send` returns) or, for receivers marked `background=True`, after
  the response as Quart background tasks: at most `SIGNALS_MAX_BACKGROUND` at once, each cut
  off after `SIGNALS_BACKGROUND_TIMEOUT` seconds, and drained at shutdown for up to
  `BACKGROUND_TASK_SHUTDOWN_TIMEOUT` seconds, with a log line for each one cancelled.

Receivers connected with plain blinker (`signal.connect(fn)`, as the tutorial does) are not
seen by the fan-outs, so the signals themselves are guarded too: quart_app's own signals are
`GuardedSignal`s, and Quart's built-in ones become `QuartSignal`s once an app uses this
module, guarded only when sent by such an app (a plain Quart app keeps Quart's semantics).
A guarded send runs the fan-outs first (the cache invalidation is one), then every other
receiver, each guarded the same way.

Every receiver run, whichever of these ways, is counted for `/metrics` by its outcome (ok,
error, cut_off, cancelled) unless the app has `METRICS = false`: one counter increment.

Connect with the `receiver` decorator (Django's `@receiver`, per app); send custom signals
with `await send(signal, app, **kwargs)`. Sync receivers are accepted and run in Quart's
thread pool through `app.ensure_async`, which costs a thread hop per call.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import FunctionType
from typing import Any, Protocol, TypeVar

import quart.signals
from blinker import ANY, NamedSignal, Namespace
from quart import Quart, current_app, has_app_context
from quart.utils import run_sync

from .metrics import (
    CANCELLED,
    CUT_OFF,
    ERROR,
    OK,
    SIGNAL_BACKGROUND_RUNNING,
    ReceiverRuns,
    receiver_runs,
)
from .names import qualified_name

logger = logging.getLogger("quart_app.dispatch")

Receiver = Callable[..., Any]
AsyncReceiver = Callable[..., Awaitable[Any]]
_Sender = TypeVar("_Sender")
# blinker's names: what makes a sync receiver awaitable, and an async one callable from sync.
SyncWrapper = Callable[[Callable[..., Any]], Callable[..., Coroutine[Any, Any, Any]]]
AsyncWrapper = Callable[[Callable[..., Coroutine[Any, Any, Any]]], Callable[..., Any]]
# Quart's `app.ensure_async` or `run_sync`, which a SyncWrapper also is.
ToAsync = Callable[[Callable[..., Any]], Callable[..., Awaitable[Any]]]
Results = list[tuple[Callable[..., Any], Any]]

_EXTENSION_KEY = "signal_dispatch"

# True while the signal bus delivers a signal that was sent in another process.
_remote_delivery: ContextVar[bool] = ContextVar("remote_delivery", default=False)


def is_remote_delivery() -> bool:
    """Whether the signal being handled was sent in another process (and came over the bus)."""
    return _remote_delivery.get()


class DuplicateReceiver(Exception):
    """A receiver with this dispatch_uid is already connected to this signal for this app."""


def real_app(app: _Sender) -> _Sender:
    """The app behind `current_app`: blinker tells senders apart by id(), and a proxy's differs."""
    unwrap = getattr(app, "_get_current_object", None)
    return unwrap() if unwrap is not None else app


receiver_name = qualified_name  # the name a receiver is logged and counted under


@dataclass(slots=True)
class Connection:
    uid: str
    name: str
    call: AsyncReceiver
    background: bool
    origin_only: bool
    runs: ReceiverRuns | None  # None when the app has `METRICS = false`


@dataclass
class SignalReceivers:
    """One app's receivers for one signal, in connection order, behind one blinker receiver."""

    signal: NamedSignal
    connections: list[Connection] = field(default_factory=list)
    fan_out: AsyncReceiver | None = None
    sender: Any = None


class Relay(Protocol):
    """What carries a broadcast signal to the other processes (the signal bus), installed
    from above with `set_relay` so that this layer never looks the bus up."""

    async def publish(self, signal: NamedSignal, kwargs: dict[str, Any]) -> None: ...


class AppDispatch:
    """Everything the dispatcher keeps for one app (in `app.extensions`, never on a global)."""

    def __init__(self, app: Quart) -> None:
        self.by_signal: dict[str, SignalReceivers] = {}
        #: Where `send` passes broadcast signals on, after the local receivers (None: nowhere).
        self.relay: Relay | None = None
        self.max_background = int(app.config.get("SIGNALS_MAX_BACKGROUND", 100))
        self.background_timeout = float(app.config.get("SIGNALS_BACKGROUND_TIMEOUT", 30))
        self.counting = bool(app.config.get("METRICS", True))
        self._slots: asyncio.Semaphore | None = None

    @property
    def slots(self) -> asyncio.Semaphore:
        # Made on first use, inside the serving loop it guards.
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_background)
        return self._slots


def app_dispatch(app: Quart) -> AppDispatch:
    dispatch = app.extensions.get(_EXTENSION_KEY)
    if dispatch is None:
        _guard_quart_signals()
        dispatch = app.extensions[_EXTENSION_KEY] = AppDispatch(app)

        @app.after_serving
        async def disconnect_receivers() -> None:
            disconnect_all(app)

    return dispatch


def receiver(
    signal: NamedSignal, app: Quart, *, dispatch_uid: str | None = None,
    background: bool = False, any_sender: bool = False, origin_only: bool = False,
) -> Callable[[Receiver], Receiver]:
    """Decorator: connect a receiver to `signal` for `app` only, held strongly, at most once.

    `dispatch_uid` names the registration (default: the function's qualified name); a second
    one under the same name raises `DuplicateReceiver`. `background=True` runs it after the
    response instead of before `send` returns. `any_sender=True` is for the two signals
    Quart sends with the websocket message, not the app, as sender (websocket_received and
    websocket_sent): such a receiver hears every app's messages. `origin_only=True` keeps a
    receiver to the process that sent the signal: with the signal bus, a broadcast signal
    reaches every process, and a side effect that must happen once per event (an SMS, a
    shared counter) belongs to one of them.
    """

    target = real_app(app)

    def connect(function: Receiver) -> Receiver:
        dispatch = app_dispatch(target)
        receivers = dispatch.by_signal.get(signal.name)
        if receivers is None:
            receivers = dispatch.by_signal[signal.name] = SignalReceivers(signal)
        uid = dispatch_uid or receiver_name(function)
        if any(connection.uid == uid for connection in receivers.connections):
            raise DuplicateReceiver(f"{uid} is already connected to {signal.name!r}")
        call = (function if inspect.iscoroutinefunction(function)
                else target.ensure_async(function))
        name = receiver_name(function)
        runs = receiver_runs(signal.name, name) if dispatch.counting else None
        receivers.connections.append(Connection(uid, name, call, background, origin_only, runs))
        if receivers.fan_out is None:
            receivers.fan_out = _make_fan_out(target, dispatch, receivers)
            _FAN_OUTS.add(receivers.fan_out)
            receivers.sender = ANY if any_sender else target
            signal.connect(receivers.fan_out, sender=receivers.sender, weak=False)
        return function

    return connect


def set_relay(app: Quart, relay: Relay) -> None:
    """Pass `app`'s signals on to `relay` after its own receivers ran (see `send`)."""
    app_dispatch(app).relay = relay


def disconnect_all(app: Quart) -> None:
    """Undo every `receiver` registration for `app` (done when the app stops serving)."""
    dispatch: AppDispatch | None = app.extensions.get(_EXTENSION_KEY)
    if dispatch is None:
        return
    for receivers in dispatch.by_signal.values():
        if receivers.fan_out is not None:
            receivers.signal.disconnect(receivers.fan_out, sender=receivers.sender)
    dispatch.by_signal.clear()


def connected_names(signal: NamedSignal, app: Quart) -> list[str]:
    """The qualified names of `app`'s receivers for `signal`, in the order they run."""
    receivers = app_dispatch(app).by_signal.get(signal.name)
    return [] if receivers is None else [c.name for c in receivers.connections]


async def send(signal: NamedSignal, app: Quart, **kwargs: Any) -> None:
    """Run `app`'s receivers for `signal`: inline ones awaited in order, background ones queued.

    A broadcast signal (`quart_app.signals.BROADCAST`) then goes on the app's relay (the
    signal bus, `set_relay`), when it has one, to every other process's receivers.
    """
    sender = real_app(app)
    await send_local(signal, sender, **kwargs)
    dispatch: AppDispatch | None = sender.extensions.get(_EXTENSION_KEY)
    if dispatch is not None and dispatch.relay is not None:
        await dispatch.relay.publish(signal, kwargs)


async def send_local(
    signal: NamedSignal, app: Quart, *, remote: bool = False, **kwargs: Any
) -> None:
    """`send` without the bus; the bus delivers another process's signals with `remote=True`."""
    sender = real_app(app)
    token = _remote_delivery.set(remote)
    try:
        await _send_guarded(signal, sender, None, kwargs)
    finally:
        _remote_delivery.reset(token)


# Every fan-out `receiver` has connected, so that a guarded send can run them first.
_FAN_OUTS: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()


def _is_fan_out(function: Callable[..., Any]) -> bool:
    return isinstance(function, FunctionType) and function in _FAN_OUTS


def _ordered_receivers(signal: NamedSignal, sender: Any) -> list[Callable[..., Any]]:
    """blinker's receivers for `sender`: quart_app's fan-outs first, then the others."""
    receivers = list(signal.receivers_for(sender))
    if len(receivers) > 1:  # one receiver (per request: visits, the render log) is in order
        receivers.sort(key=lambda function: not _is_fan_out(function))
    return receivers


async def _send_guarded(
    signal: NamedSignal, sender: Any, sync_wrapper: ToAsync | None, kwargs: dict[str, Any]
) -> Results:
    """blinker's `send_async`, except for the order and that no receiver's error escapes.

    A receiver that raised has its exception as its result, as in Django's send_robust.
    """
    if signal.is_muted or not signal.receivers:
        return []  # Quart sends six signals per request, most of them to nobody
    wrap: ToAsync
    if sync_wrapper is not None:
        wrap = sync_wrapper
    elif isinstance(sender, Quart):
        wrap = sender.ensure_async
    else:
        wrap = run_sync
    results: Results = []
    counting: bool | None = None  # found out at the first receiver that is not a fan-out
    for function in _ordered_receivers(signal, sender):
        call = function if inspect.iscoroutinefunction(function) else wrap(function)
        runs = None
        if not _is_fan_out(function):  # a fan-out counts its own receivers
            if counting is None:
                counting = _counting(sender)
            if counting:
                runs = receiver_runs(signal.name, receiver_name(function))
        outcome = CANCELLED
        try:
            result = await call(sender, **kwargs)
            outcome = OK
        except Exception as error:
            logger.exception("receiver %s failed on %s", receiver_name(function), signal.name)
            result = error
            outcome = ERROR
        finally:
            if runs is not None:
                runs.count(outcome)
        results.append((function, result))
    return results


def _send_sync_guarded(
    signal: NamedSignal, sender: Any, async_wrapper: AsyncWrapper | None, kwargs: dict[str, Any]
) -> Results:
    if signal.is_muted:
        return []
    receivers = _ordered_receivers(signal, sender)
    coroutines = [receiver_name(f) for f in receivers if inspect.iscoroutinefunction(f)]
    if coroutines and async_wrapper is None:
        # Refused before any receiver runs: half a send would leave the cache stale.
        raise RuntimeError(
            f"{signal.name} has async receivers ({', '.join(coroutines)}): send it with "
            "`await signal.send_async(app, ...)` or `await quart_app.dispatch.send(...)`"
        )
    results: Results = []
    counting = _counting(sender)
    for function in receivers:
        call = (async_wrapper(function) if async_wrapper is not None
                and inspect.iscoroutinefunction(function) else function)
        outcome = OK
        try:
            result = call(sender, **kwargs)
        except Exception as error:
            logger.exception("receiver %s failed on %s", receiver_name(function), signal.name)
            result = error
            outcome = ERROR
        if counting and not _is_fan_out(function):
            receiver_runs(signal.name, receiver_name(function)).count(outcome)
        results.append((function, result))
    return results


def _counting(sender: Any) -> bool:
    """Whether receiver runs are counted for a send from `sender`: its app's `METRICS`."""
    if isinstance(sender, Quart):
        app: Any = sender
    elif has_app_context():
        app = current_app
    else:
        return False  # no app, so no /metrics that would show the counts
    dispatch: AppDispatch | None = app.extensions.get(_EXTENSION_KEY)
    if dispatch is not None:
        return dispatch.counting
    return bool(app.config.get("METRICS", True))


class GuardedSignal(NamedSignal):
    """A blinker signal whose receivers, however they were connected, run guarded.

    Sending runs quart_app's fan-outs (the `receiver` registrations, in their order) first,
    then the receivers connected with plain blinker, each guarded: one that raises is logged
    with its name and never stops another nor reaches the sender. Sync receivers run through
    the sender app's `ensure_async`. Everything else is blinker's: sender filtering, weak
    references, `receivers_for`, `connected_to`, `muted`.
    """

    def guards(self, sender: Any) -> bool:
        """Whether a send from `sender` is guarded (always, for quart_app's own signals)."""
        return True

    async def send_async(
        self, sender: Any | None = None, /, *, _sync_wrapper: SyncWrapper | None = None,
        **kwargs: Any,
    ) -> Results:
        if not self.guards(sender):
            return await super().send_async(sender, _sync_wrapper=_sync_wrapper, **kwargs)
        return await _send_guarded(self, real_app(sender), _sync_wrapper, kwargs)

    def send(
        self, sender: Any | None = None, /, *, _async_wrapper: AsyncWrapper | None = None,
        **kwargs: Any,
    ) -> Results:
        """Sync receivers only (or pass `_async_wrapper`): an async one is refused up front."""
        if not self.guards(sender):
            return super().send(sender, _async_wrapper=_async_wrapper, **kwargs)
        return _send_sync_guarded(self, real_app(sender), _async_wrapper, kwargs)


class GuardedNamespace(Namespace):
    """A blinker Namespace whose signals are `GuardedSignal`s."""

    def signal(self, name: str, doc: str | None = None) -> GuardedSignal:
        signal = self.get(name)
        if not isinstance(signal, GuardedSignal):
            signal = self[name] = GuardedSignal(name, doc)
        return signal


class QuartSignal(GuardedSignal):
    """Quart's built-in signals, guarded only when quart_app is in play.

    That is, when the sender is an app using this module or, for the two signals sent with
    a websocket message as sender (websocket_received, websocket_sent), when such an app's
    context is current or one of the receivers is a fan-out. Any other send keeps Quart's
    semantics, so a plain Quart app in the same process sees no change.
    """

    def guards(self, sender: Any) -> bool:
        if isinstance(sender, Quart):
            return _EXTENSION_KEY in sender.extensions
        if has_app_context() and _EXTENSION_KEY in current_app.extensions:
            return True
        return any(_is_fan_out(function) for function in self.receivers_for(sender))


def _guard_quart_signals() -> None:
    # Quart sends its module-level signals itself (`signal.send_async(app, ...)`), so the
    # objects must change class; QuartSignal.guards keeps the change to quart_app's apps.
    for value in vars(quart.signals).values():
        if type(value) is NamedSignal:
            value.__class__ = QuartSignal


def _make_fan_out(app: Quart, dispatch: AppDispatch, receivers: SignalReceivers) -> AsyncReceiver:
    signal_name = receivers.signal.name

    async def fan_out(sender: Any, **kwargs: Any) -> None:
        remote = _remote_delivery.get()
        for connection in list(receivers.connections):
            if remote and connection.origin_only:
                continue
            if connection.background:
                app.add_background_task(_run_in_background, dispatch, connection, signal_name,
                                        sender, kwargs)
            else:
                await _run_guarded(connection, signal_name, sender, kwargs)

    fan_out.__qualname__ = f"fan_out[{signal_name}]"
    return fan_out


async def _run_guarded(
    connection: Connection, signal_name: str, sender: Any, kwargs: dict[str, Any]
) -> None:
    """Run an inline receiver: an exception is logged and counted, never raised."""
    outcome = CANCELLED
    try:
        outcome = await _call(connection, signal_name, sender, kwargs)
    finally:
        if connection.runs is not None:
            connection.runs.count(outcome)


async def _call(
    connection: Connection, signal_name: str, sender: Any, kwargs: dict[str, Any]
) -> str:
    try:
        await connection.call(sender, **kwargs)
    except Exception:
        logger.exception("receiver %s failed on %s", connection.name, signal_name)
        return ERROR
    return OK


async def _run_in_background(
    dispatch: AppDispatch, connection: Connection, signal_name: str, sender: Any,
    kwargs: dict[str, Any],
) -> None:
    outcome = CANCELLED  # at shutdown, possibly before it had a slot
    try:
        async with dispatch.slots:
            if connection.runs is not None:
                SIGNAL_BACKGROUND_RUNNING.inc()
            try:
                async with asyncio.timeout(dispatch.background_timeout):
                    outcome = await _call(connection, signal_name, sender, kwargs)
            finally:
                if connection.runs is not None:
                    SIGNAL_BACKGROUND_RUNNING.dec()
    except TimeoutError:
        outcome = CUT_OFF
        logger.error("background receiver %s on %s timed out after %.1f s",
                     connection.name, signal_name, dispatch.background_timeout)
    except asyncio.CancelledError:
        logger.warning("background receiver %s on %s cancelled at shutdown before it finished",
                       connection.name, signal_name)
        raise
    finally:
        if connection.runs is not None:
            connection.runs.count(outcome)
