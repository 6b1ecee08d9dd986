"""X-Request-ID: taken from the request when sane, else made, and sent back on every response."""

from __future__ import annotations

from quart.testing import QuartClient


async def test_every_response_carries_a_request_id(client: QuartClient) -> None:
    first = await client.get("/healthz")
    second = await client.get("/healthz")
    assert len(first.headers["X-Request-ID"]) == 32
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]
    unsafe = await client.get("/healthz", headers={"X-Request-ID": "bad id\x7f" * 20})
    assert unsafe.headers["X-Request-ID"].isalnum()
