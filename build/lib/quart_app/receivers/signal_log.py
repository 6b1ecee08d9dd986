"""SIGNAL_LOG: one receiver per signal, Quart's 18 and quart_app's own, logging at DEBUG.

Switch it on to watch a request's whole life cycle in the log.
"""

from __future__ import annotations

import logging
from typing import Any

import quart.signals
from blinker import NamedSignal
from quart import Quart

from .. import signals as own_signals
from ..dispatch import receiver

logger = logging.getLogger("quart_app.signals")


def all_signals() -> list[NamedSignal]:
    found = [value for module in (quart.signals, own_signals) for value in vars(module).values()
             if isinstance(value, NamedSignal)]
    return sorted(set(found), key=lambda signal: signal.name)


# Quart sends these with the websocket message as sender, so they cannot be tied to one app.
MESSAGE_SENT_SIGNALS = {quart.signals.websocket_received, quart.signals.websocket_sent}


def connect(app: Quart) -> None:
    for signal in all_signals():
        receiver(signal, app, dispatch_uid=f"signal_log.{signal.name}",
                 any_sender=signal in MESSAGE_SENT_SIGNALS)(_logger_for(signal))


def _logger_for(signal: NamedSignal) -> Any:
    async def log_signal(sender: Any, **kwargs: Any) -> None:
        details = ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
        logger.debug("signal %s: %s", signal.name, details)

    log_signal.__qualname__ = f"log_signal[{signal.name}]"
    return log_signal
