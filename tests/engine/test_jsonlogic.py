"""JSON Logic edge cases, against json-logic-js (JavaScript) semantics."""

from __future__ import annotations

import math
from typing import Any

import pytest

from targetd_server.engine.errors import InvalidArtifactError
from targetd_server.engine.jsonlogic import compile_logic
from targetd_server.engine.jsvalues import js_equal, js_less, js_str, js_to_number, truthy


def ev(rule: Any, data: Any = None) -> Any:
    return compile_logic(rule)(data if data is not None else {})


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (1, "1", True),  # number vs string → number
        (5, "5", True),  # current_day == "5"
        ("5", 5.0, True),
        (0, "", True),  # "" → 0
        (0, " ", True),  # whitespace → 0
        (1, True, True),  # booleans become numbers
        ("1", True, True),
        (0, False, True),
        ("true", True, False),  # "true" → NaN
        (None, None, True),
        (None, 0, False),  # null only equals null/undefined
        (None, "", False),
        (None, False, False),
        ("a", "a", True),
        ("a", "A", False),
        ([1, 2], "1,2", True),  # arrays compare as their joined string
        (math.nan, math.nan, False),
        ("0x10", 16, True),
        ("1e3", 1000, True),
        ("abc", 0, False),
    ],
)
def test_loose_equality(a: Any, b: Any, expected: bool) -> None:
    assert js_equal(a, b) is expected
    assert js_equal(b, a) is expected
    assert ev({"==": [a, b]}) is expected
    assert ev({"!=": [a, b]}) is (not expected)


def test_strict_equality() -> None:
    assert ev({"===": [1, 1.0]}) is True
    assert ev({"===": [1, "1"]}) is False
    assert ev({"!==": [1, "1"]}) is True
    assert ev({"===": [True, 1]}) is False


@pytest.mark.parametrize(
    ("a", "b", "less"),
    [
        ("0000", "0105", True),  # two strings: lexical
        ("10", "9", True),  # lexical, not numeric
        (10, "9", False),  # one number: numeric
        ("37.70", 37.75, True),  # geo latitude rules
        ("-122.5", -122.4, True),
        (None, 1, True),  # null → 0
        ("abc", 1, False),  # NaN never compares
        (1, "abc", False),
        (True, 2, True),
    ],
)
def test_relational(a: Any, b: Any, less: bool) -> None:
    assert js_less(a, b) is less
    assert ev({"<": [a, b]}) is less
    assert ev({">": [b, a]}) is less


def test_between_forms() -> None:
    assert ev({"<=": ["0000", {"var": "t"}, "2359"]}, {"t": "0105"}) is True
    assert ev({"<=": ["0000", {"var": "t"}, "2359"]}, {"t": "2400"}) is False
    assert ev({"<=": [1, {"var": "x"}, 1]}, {"x": 1}) is True
    assert ev({"<": [1, {"var": "x"}, 3]}, {"x": 1}) is False
    assert ev({"<": [1, {"var": "x"}, 3]}, {"x": 2}) is True
    assert ev({">=": [50, {"var": "allocation"}]}, {"allocation": 50}) is True
    assert ev({">": [50, {"var": "allocation"}]}, {"allocation": 50}) is False


def test_in() -> None:
    assert ev({"in": ["bar", {"var": "u"}]}, {"u": "http://x/?bar=1"}) is True
    assert ev({"in": ["baz", {"var": "u"}]}, {"u": "http://x/?bar=1"}) is False
    assert ev({"in": ["a", ["a", "b"]]}) is True
    assert ev({"in": [1, ["1", "b"]]}) is False  # array membership is strict
    assert ev({"in": [1, "a1"]}) is True  # the needle becomes a string
    assert ev({"in": ["a", {"var": "missing"}]}) is False
    assert ev({"in": ["a", 5]}) is False


def test_var() -> None:
    data = {"mbox": {"favorite": {"color_lc": "red"}}, "list": [10, 20], "zero": 0}
    assert ev({"var": "mbox.favorite.color_lc"}, data) == "red"
    assert ev({"var": ["mbox.favorite.size", "M"]}, data) == "M"
    assert ev({"var": "mbox.nothing.deeper"}, data) is None
    assert ev({"var": "list.1"}, data) == 20
    assert ev({"var": "list.5"}, data) is None
    assert ev({"var": "zero"}, data) == 0  # falsy values are not replaced by the default
    assert ev({"var": ""}, data) == data
    assert ev({"var": [{"cat": ["mbox.", "favorite"]}]}, data) == {"color_lc": "red"}


def test_and_or_not_return_js_values() -> None:
    assert ev({"and": [1, "", 2]}) == ""
    assert ev({"and": [1, 2]}) == 2
    assert ev({"or": [0, [], "x"]}) == "x"  # [] is falsy in json-logic
    assert ev({"or": [0, ""]}) == ""
    assert ev({"!": [[]]}) is True
    assert ev({"!": {"var": "missing"}}) is True  # a non-array argument is wrapped
    assert ev({"!!": ["0"]}) is True  # "0" is a non-empty string
    assert ev(True) is True


class _Exploding(dict[str, Any]):
    def get(self, key: str, default: Any = None) -> Any:
        if key == "boom":
            raise AssertionError("evaluated an operand that JS would not evaluate")
        return super().get(key, default)


def test_and_or_short_circuit() -> None:
    data = _Exploding(a=0, b=1)
    assert ev({"and": [{"var": "a"}, {"var": "boom"}]}, data) == 0
    assert ev({"or": [{"var": "b"}, {"var": "boom"}]}, data) == 1
    assert ev({"if": [{"var": "b"}, "yes", {"var": "boom"}]}, data) == "yes"


def test_if_cat_arithmetic_and_missing() -> None:
    assert ev({"if": [{"var": "a"}, "yes", "no"]}, {"a": 1}) == "yes"
    assert ev({"if": [False, 1, False, 2, 3]}) == 3
    assert ev({"cat": ["a", 1, True, None, 1.5]}) == "a1truenull1.5"
    assert ev({"+": ["1", 2]}) == 3
    assert ev({"-": [5]}) == -5
    assert ev({"%": [7, 4]}) == 3
    assert ev({"max": [1, "3", 2]}) == 3
    assert ev({"missing": ["a", "b"]}, {"a": 1}) == ["b"]
    assert ev({"missing_some": [1, ["a", "b"]]}, {"a": 1}) == []
    assert ev({"substr": ["jsonlogic", -5, 3]}) == "log"
    assert ev({"merge": [[1], 2, [3]]}) == [1, 2, 3]


def test_unknown_operator_is_rejected_at_compile_time() -> None:
    with pytest.raises(InvalidArtifactError, match="Unrecognized JSON Logic operation: nope"):
        compile_logic({"and": [{"nope": [1]}]})


def test_multi_key_object_is_data() -> None:
    assert ev({"a": 1, "b": 2}) == {"a": 1, "b": 2}


def test_js_helpers() -> None:
    assert js_str(125873) == "125873"
    assert js_str(125873.0) == "125873"
    assert js_str(2.5) == "2.5"
    assert js_str(True) == "true"
    assert js_str([1, None, "a"]) == "1,,a"
    assert js_to_number("  42 ") == 42
    assert js_to_number("Infinity") == math.inf
    assert math.isnan(js_to_number("infinity"))  # JavaScript is case-sensitive here
    assert js_to_number("1E3") == 1000
    assert js_to_number("0X1f") == 31
    assert ev({"substr": ["abc", "x"]}) == "abc"  # NaN start → 0
    assert math.isnan(js_to_number({}))
    assert truthy([]) is False
    assert truthy({}) is True
    assert truthy("0") is True
    assert truthy(math.nan) is False
