"""Cache keys: what goes into them, and what must never collide."""

from __future__ import annotations

import inspect
from decimal import Decimal
from typing import Any

import pytest
from werkzeug.datastructures import Headers, MultiDict

from quart_app.cache.keys import (
    arguments_digest,
    memo_keys,
    query_args_pairs,
    sorted_query,
    vary_names,
    vary_pairs,
    view_keys,
    view_scopes,
)


def test_query_is_sorted_by_name_and_keeps_the_order_of_repeated_values() -> None:
    assert sorted_query([("b", "2"), ("q", "y"), ("a", "1"), ("q", "x")]) == [
        ("a", "1"), ("b", "2"), ("q", "y"), ("q", "x")
    ]


@pytest.mark.parametrize("given", [
    {"a": "1", "q": ["y", "x"]},
    [("q", "y"), ("a", 1), ("q", "x")],
    MultiDict([("q", "y"), ("q", "x"), ("a", "1")]),
])
def test_query_args_in_every_form_give_the_same_pairs(given: Any) -> None:
    assert query_args_pairs(given) == [("a", "1"), ("q", "y"), ("q", "x")]


def test_vary_names_are_normalised_and_star_means_never() -> None:
    assert vary_names(["Accept-Language, accept-encoding", "ACCEPT-LANGUAGE"]) == (
        "accept-encoding", "accept-language")
    assert vary_names([]) == ()
    assert vary_names(["Accept, *"]) is None


def test_vary_pairs_tell_an_absent_header_from_an_empty_one() -> None:
    headers = Headers([("Accept", ""), ("X-Many", "a"), ("X-Many", "b")])
    assert vary_pairs(["accept", "x-many", "x-absent"], headers) == [
        ("accept", ""), ("x-many", "a, b"), ("x-absent", None)
    ]


@pytest.mark.parametrize(("one", "other"), [
    (("v", "p", "/a", [("q", "1")], None), ("v", "p", "/a", [("q", "2")], None)),
    (("v", "p", "/a", [], None), ("v", "p", "/a", None, None)),
    (("v", "p", "/a", [], None), ("v", "p", "/b", [], None)),
    (("v", "p", "/a", [], None), ("v", "q", "/a", [], None)),  # key_prefix kept
    (("v", "p", "/a", [], None), ("w", "p", "/a", [], None)),  # another view
    (("v", "p", "/a", [], "k"), ("v", "q", "/a", [], "k")),  # custom key, prefix still kept
    (("v", "p", "/a?q=1", None, None), ("v", "p", "/a", [("q", "1")], None)),
    (("v", "p/", "/a", [], None), ("v", "p", "//a", [], None)),
])
def test_view_keys_that_must_differ(one: tuple[Any, ...], other: tuple[Any, ...]) -> None:
    assert view_keys(*one).entry != view_keys(*other).entry


def test_view_scopes_nest_from_view_to_query() -> None:
    keys = view_keys("v", "p", "/a", [("q", "1")], None)
    assert list(keys.scopes) == view_scopes("v", "/a", [("q", "1")])
    assert keys.scopes[0] == view_scopes("v")[0]
    assert keys.scopes[1] == view_scopes("v", "/a")[1]
    without_query = view_keys("v", "p", "/a", None, None)
    assert len(without_query.scopes) == 2  # a view that ignores the query has no query scope


def test_variant_keys_differ_per_header_value() -> None:
    keys = view_keys("v", "p", "/a", [], None)
    assert keys.variant([("accept", "a")]) != keys.variant([("accept", None)])
    assert keys.variant([("accept", "a")]) != keys.entry


def _digest(function: Any, *args: Any, ignored: frozenset[str] = frozenset(),
            **kwargs: Any) -> str:
    return arguments_digest(inspect.signature(function), args, kwargs, ignored)


def sample(a: Any, b: Any = 2, *rest: Any, c: Any = None, **options: Any) -> None:
    return None


def test_arguments_bind_like_a_call() -> None:
    assert _digest(sample, 1) == _digest(sample, 1, 2) == _digest(sample, a=1, b=2)
    assert _digest(sample, 1, x=1, y=2) == _digest(sample, 1, y=2, x=1)
    assert _digest(sample, 1, 3) != _digest(sample, 1)
    assert _digest(sample, 1, 2, 3) != _digest(sample, 1, 2, c=3)


@pytest.mark.parametrize(("one", "other"), [
    (1, "1"), (1, True), (1, 1.0), (Decimal("1.0"), Decimal("1.00")), ((1, 2), [1, 2]),
    ({"a": 1}, {"a": "1"}), (None, "None"), (b"a", "a"),
])
def test_arguments_that_only_look_alike_differ(one: Any, other: Any) -> None:
    assert _digest(sample, one) != _digest(sample, other)


def test_dicts_are_keys_whatever_their_order() -> None:
    assert _digest(sample, {"x": 1, "y": 2}) == _digest(sample, {"y": 2, "x": 1})


def test_ignored_arguments_are_left_out() -> None:
    ignored = frozenset({"a"})
    assert _digest(sample, 1, ignored=ignored) == _digest(sample, 99, ignored=ignored)


def test_memo_keys_per_function_and_call() -> None:
    one = memo_keys("f", _digest(sample, 1))
    assert one.entry != memo_keys("g", _digest(sample, 1)).entry
    assert one.entry != memo_keys("f", _digest(sample, 2)).entry
    assert len(one.scopes) == 2
