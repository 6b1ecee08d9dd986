"""Bodies and parameters at their edges: every bad one is a 400 or 415 naming what and why.

Through HTTP, on every route that reads a body (`POST /api/info`, `POST /login`) or inserts
from a query string (`GET /info`). Validation does not depend on the cache or the database,
so these run once, on SQLite and the memory cache.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from quart.testing import QuartClient

from quart_app import create_app
from quart_app.schemas import MAX_ID

from .support import memory_sqlite_config

BODY_ROUTES = ["/api/info", "/login"]
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def app_config(tmp_path: Path) -> dict[str, Any]:
    return memory_sqlite_config(tmp_path)


async def send(client: QuartClient, path: str, body: bytes, content_type: str) -> Any:
    return await client.post(path, data=body, headers={"Content-Type": content_type})


async def problems(response: Any, status: int = 400) -> dict[str, str]:
    """The error body's fields as {field: reason}, after checking its shape."""
    assert response.status_code == status
    payload = await response.get_json()
    assert set(payload) == {"error", "message", "fields"}
    assert payload["fields"], payload
    for problem in payload["fields"]:
        assert set(problem) == {"field", "reason"}
        assert problem["field"] in payload["message"]
    return {problem["field"]: problem["reason"] for problem in payload["fields"]}


async def stored_rows(client: QuartClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await (await client.get("/api/info")).get_json())["items"]
    return items


# --- bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize("content_type", [JSON, FORM])
async def test_invalid_utf8_is_400_saying_where(
    client: QuartClient, path: str, content_type: str
) -> None:
    body = b'{"username": "\xff", "name": "\xff", "money": 1}' if content_type == JSON else \
        b"username=\xff&name=\xff&money=1"
    reasons = await problems(await send(client, path, body, content_type))
    offset = body.index(b"\xff")
    assert reasons == {"body": f"not valid UTF-8: byte 0xff at offset {offset}"}


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize("charset", ["latin-1", "utf-16", "ISO-8859-1"])
@pytest.mark.parametrize("media_type", [JSON, FORM])
async def test_a_charset_other_than_utf8_is_415(
    client: QuartClient, path: str, charset: str, media_type: str
) -> None:
    text = '{"username": "café", "name": "café", "money": 1}' if media_type == JSON else \
        "username=café&name=café&money=1"
    response = await send(client, path, text.encode(charset.lower()),
                          f"{media_type}; charset={charset}")
    reasons = await problems(response, 415)
    assert (await response.get_json())["error"] == "unsupported_media_type"
    assert f"charset={charset}" in reasons["Content-Type"]
    assert "UTF-8" in reasons["Content-Type"]
    assert await stored_rows(client) == []


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", '"utf-8"', "utf8"])
async def test_a_declared_utf8_charset_is_accepted(client: QuartClient, charset: str) -> None:
    response = await send(client, "/api/info", '{"name": "café", "money": 1}'.encode(),
                          f"{JSON}; charset={charset}")
    assert response.status_code == 201
    assert (await response.get_json())["name"] == "café"


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize("opening", [b"[", b'{"a":'])
async def test_deep_nesting_is_400_not_a_recursion_error(
    client: QuartClient, path: str, opening: bytes
) -> None:
    closing = b"]" if opening == b"[" else b"}"
    body = opening * 5000 + b"1" + closing * 5000  # 30 KB, under MAX_CONTENT_LENGTH
    reasons = await problems(await send(client, path, body, JSON))
    assert reasons["body"].startswith("not valid JSON: nested more than 200 levels deep at line 1")


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize(
    ("body", "kind"),
    [(b"[1, 2]", "an array"), (b'"name"', "a string"), (b"5", "an integer"),
     (b"2.5", "a number with a fraction or exponent"), (b"null", "null"),
     (b"true", "a boolean")],
)
async def test_a_body_that_is_not_an_object_is_400(
    client: QuartClient, path: str, body: bytes, kind: str
) -> None:
    reasons = await problems(await send(client, path, body, JSON))
    assert reasons == {"body": f"expected a JSON object {{...}}, got {kind}"}


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize(
    ("body", "reason"),
    [(b'{"name": "a",\n "money": }', "expected value at line 2 column 11"),
     (b'{"name": "a"} x', "trailing characters at line 1 column 15"),
     (b'{"money": NaN}', "expected value at line 1 column 11"),
     (b'{"name": "\\ud800"}', "at line 1 column"),
     (b"   ", "empty: send a JSON object")],
)
async def test_malformed_json_says_where_it_broke(
    client: QuartClient, path: str, body: bytes, reason: str
) -> None:
    reasons = await problems(await send(client, path, body, JSON))
    assert set(reasons) == {"body"}
    assert reason in reasons["body"]


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data; boundary=x", ""])
async def test_other_media_types_are_415_naming_what_is_accepted(
    client: QuartClient, path: str, content_type: str
) -> None:
    response = await send(client, path, b"username=a&name=a&money=1", content_type)
    reasons = await problems(response, 415)
    assert f"send the body as {JSON} or {FORM}" in reasons["Content-Type"]


async def test_a_form_field_given_twice_is_refused(client: QuartClient) -> None:
    response = await send(client, "/api/info", b"name=a&money=1&money=2", FORM)
    assert await problems(response) == {"money": "given more than once in the body; give it once"}
    response = await send(client, "/login", b"username=a&username=b", FORM)
    assert await problems(response) == {
        "username": "given more than once in the body; give it once"}
    assert await stored_rows(client) == []


async def test_a_repeated_field_the_login_ignores_is_ignored(client: QuartClient) -> None:
    response = await send(client, "/login", b"username=ann&remember=1&remember=2", FORM)
    assert response.status_code == 302


async def test_bad_percent_encoding_names_the_field(client: QuartClient) -> None:
    response = await send(client, "/api/info", b"name=caf%E9&money=1", FORM)
    assert await problems(response) == {"name": "its percent-encoding in the body is not UTF-8"}


# --- query strings -----------------------------------------------------------------------


async def test_a_repeated_query_parameter_says_it_was_repeated(client: QuartClient) -> None:
    response = await client.get("/api/info?limit=1&limit=2")
    assert await problems(response) == {
        "limit": "given more than once in the query string; give it once"}
    response = await client.get("/info?id=1&name=a&money=1&money=2")
    assert await problems(response) == {
        "money": "given more than once in the query string; give it once"}
    assert await stored_rows(client) == []


async def test_query_strings_are_strict_utf8(client: QuartClient) -> None:
    response = await client.get("/info?id=1&name=caf%E9&money=1")
    assert await problems(response) == {
        "name": "its percent-encoding in the query string is not UTF-8"}
    assert await stored_rows(client) == []


# --- values: what is accepted, said plainly -------------------------------------------------


async def insert(client: QuartClient, source: str, fields: dict[str, Any]) -> Any:
    """POST /api/info as JSON or as a form, or the tutorial's GET /info."""
    if source == "json":
        return await client.post("/api/info", json=fields)
    text = {name: value if isinstance(value, str) else str(value)
            for name, value in fields.items()}
    if source == "form":
        return await client.post("/api/info", form=text)
    return await client.get("/info?" + "&".join(f"{name}={quote(value)}"
                                                for name, value in text.items()))


SOURCES = ["json", "form", "query"]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("money", ["\u0665", "\uff15", "1_000", "1 000", "+5", "-1", "-0",
                                   " 5", "5.", ".5", "1e3", "0x10", "Infinity", ""])
async def test_money_is_written_with_ascii_digits_only(
    client: QuartClient, source: str, money: str
) -> None:
    reasons = await problems(await insert(client, source, {"id": 3, "name": "a", "money": money}))
    assert reasons == {"money": 'expected a decimal amount written with the digits 0-9 and at '
                                'most one point, such as "588" or "12.05"'}
    assert await stored_rows(client) == []


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("info_id", ["\u0665", "\uff15", "1_000", "+5", " 5", "5.5", "5.",
                                     "0x5", "5e0", "true", ""])
async def test_an_id_in_text_is_ascii_digits_only(
    client: QuartClient, source: str, info_id: str
) -> None:
    reasons = await problems(await insert(client, source, {"id": info_id, "name": "a",
                                                           "money": 1}))
    expected = ("expected a whole number (a JSON integer such as 5), got a string"
                if source == "json" else "expected a whole number written with the digits 0-9")
    assert reasons == {"id": expected}
    assert await stored_rows(client) == []


@pytest.mark.parametrize(
    ("info_id", "kind"),
    [(True, "a boolean"), (False, "a boolean"), (5.5, "a number with a fraction or exponent"),
     ("5", "a string"), ([5], "an array"), ({"id": 5}, "an object")],
)
async def test_a_json_id_is_an_integer(client: QuartClient, info_id: Any, kind: str) -> None:
    response = await client.post("/api/info", json={"id": info_id, "name": "a", "money": 1})
    assert await problems(response) == {
        "id": f"expected a whole number (a JSON integer such as 5), got {kind}"}
    assert await stored_rows(client) == []


@pytest.mark.parametrize(
    ("source", "info_id"),
    [("json", 5), ("json", 5.0), ("json", 5e0), ("form", "5"), ("form", "5.0"),
     ("form", "005"), ("query", "5"), ("query", "5.00")],
)
async def test_a_whole_number_with_a_zero_fraction_is_that_id(
    client: QuartClient, source: str, info_id: Any
) -> None:
    response = await insert(client, source, {"id": info_id, "name": "a", "money": 1})
    assert response.status_code in (200, 201)
    assert (await (await client.get("/api/info/5")).get_json())["id"] == 5


@pytest.mark.parametrize("money", [True, None, [1], {"a": 1}])
async def test_json_money_is_a_number_or_a_string(client: QuartClient, money: Any) -> None:
    response = await client.post("/api/info", json={"name": "a", "money": money})
    reasons = await problems(response)
    assert reasons["money"].startswith("expected a decimal amount (a number such as 588, or a "
                                       'string such as "12.05"), got ')


@pytest.mark.parametrize("name", [123, True, None, ["a"]])
async def test_a_json_name_is_a_string(client: QuartClient, name: Any) -> None:
    response = await client.post("/api/info", json={"name": name, "money": 1})
    assert (await problems(response))["name"].startswith("expected text (a string), got ")


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(("character", "code"),
                         [("\x00", "0000"), ("\x07", "0007"), ("\n", "000A"), ("\x1b", "001B"),
                          ("\x7f", "007F"), ("\x85", "0085")])
async def test_control_characters_in_names_are_refused(
    client: QuartClient, source: str, character: str, code: str
) -> None:
    response = await insert(client, source, {"id": 4, "name": f"ab{character}c", "money": 1})
    assert await problems(response) == {
        "name": f"contains the control character U+{code} at position 2"}
    response = await client.post("/login", form={"username": f"ab{character}c"})
    assert await problems(response) == {
        "username": f"contains the control character U+{code} at position 2"}
    assert await stored_rows(client) == []


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(
    ("money", "answered"),
    [("0", "0.00"), ("0.00", "0.00"), ("1.5", "1.50"), ("1.500", "1.50"), ("007.10", "7.10"),
     ("9999999999.99", "9999999999.99")],
)
async def test_an_acknowledged_value_reads_back_identical(
    client: QuartClient, source: str, money: str, answered: str
) -> None:
    response = await insert(client, source, {"id": 6, "name": " café ", "money": money})
    assert response.status_code in (200, 201)
    row = await (await client.get("/api/info/6")).get_json()
    assert row == {"id": 6, "name": "café", "money": answered}
    if source != "query":  # the tutorial's route answers its fixed text
        assert await response.get_json() == row


@pytest.mark.parametrize("money", [-0, -0.0, 0.0, "0"])
async def test_negative_zero_is_answered_as_it_is_stored(client: QuartClient, money: Any) -> None:
    response = await client.post("/api/info", json={"id": 8, "name": "z", "money": money})
    assert (await response.get_json())["money"] == "0.00"
    assert (await (await client.get("/api/info/8")).get_json())["money"] == "0.00"


@pytest.mark.parametrize("source", SOURCES)
async def test_an_id_beyond_any_range_is_refused_plainly(client: QuartClient, source: str) -> None:
    reasons = await problems(await insert(client, source, {"id": 10**50, "name": "a",
                                                           "money": 1}))
    assert reasons == {"id": f"must be at most {MAX_ID}"}
    reasons = await problems(await insert(client, source, {"id": "9" * 5000, "name": "a",
                                                           "money": 1}))
    assert reasons == {"id": "more than 1000 digits" if source != "json" else
                       "expected a whole number (a JSON integer such as 5), got a string"}


# --- messages a person understands -------------------------------------------------------


PYTHON_WORDS = re.compile(r"Decimal\(|InfoIn|PageQuery|LoginForm|pydantic|https?://|Traceback")


@pytest.mark.parametrize(
    ("path", "body"),
    [("/api/info", {"id": 0, "name": "", "money": "99999999999"}),
     ("/api/info", {"id": 2**40, "name": "x" * 65, "money": "1.234"}),
     ("/api/info", {"money": 1, "colour": "red"}),
     ("/login", {}),
     ("/api/info", {"name": "a", "money": 10**12})],
)
async def test_reasons_are_in_plain_words(
    client: QuartClient, path: str, body: dict[str, Any]
) -> None:
    response = await client.post(path, json=body)
    reasons = await problems(response)
    assert not PYTHON_WORDS.search(str(await response.get_json())), reasons


async def test_type_and_range_reasons_say_what_was_expected(client: QuartClient) -> None:
    response = await client.post("/api/info", json={"id": 0, "money": 1, "colour": "red"})
    assert await problems(response) == {
        "id": "must be greater than 0", "name": "required, but missing",
        "colour": "unknown field"}
    response = await client.post("/api/info", json={"name": "a", "money": "99999999999"})
    assert await problems(response) == {"money": "must be at most 9999999999.99"}
    response = await client.post("/api/info", json={"name": "a", "money": "1.234"})
    assert await problems(response) == {"money": "at most 2 digits after the point"}
    response = await client.get("/api/info?limit=abc")
    assert await problems(response) == {"limit": "expected a whole number written with the "
                                                 "digits 0-9"}
    response = await client.get("/api/info?limit=0&colour=red")
    assert await problems(response) == {"limit": "must be at least 1", "colour": "unknown field"}


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize("content_type", [JSON, FORM])
async def test_a_body_over_the_limit_is_413_on_every_route(
    app_config: dict[str, Any], path: str, content_type: str
) -> None:
    app = create_app({**app_config, "MAX_CONTENT_LENGTH": 100})
    async with app.test_app():
        body = (b'{"username": "' + b"x" * 200 + b'"}' if content_type == JSON
                else b"username=" + b"x" * 200)
        response = await send(app.test_client(), path, body, content_type)
        assert response.status_code == 413
        assert (await response.get_json())["error"] == "request_entity_too_large"
