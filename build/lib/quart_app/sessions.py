"""Quart's signed-cookie sessions, with the signer built once instead of on every request.

Quart opens the session for every request, and its cookie interface builds a new
itsdangerous serializer (key derivation included) each time, even when the request has no
session cookie: about 3% of a cached read. Only the flashed messages of `/login` need a
session, so the saving is worth a subclass.
"""

from __future__ import annotations

from itsdangerous import URLSafeTimedSerializer
from quart import Quart
from quart.sessions import SecureCookieSessionInterface


class CachedSignerSessionInterface(SecureCookieSessionInterface):
    def __init__(self) -> None:
        self._signers: dict[tuple[int, str], URLSafeTimedSerializer | None] = {}

    def get_signing_serializer(self, app: Quart) -> URLSafeTimedSerializer | None:
        key = (id(app), str(app.secret_key))
        if key not in self._signers:
            self._signers[key] = super().get_signing_serializer(app)
        return self._signers[key]
