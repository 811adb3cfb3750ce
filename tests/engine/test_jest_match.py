"""The toMatchObject comparator used by the conformance runner must be able to fail."""

from __future__ import annotations

from tests.engine.jest_match import mismatches


def test_objects_are_subsets() -> None:
    assert mismatches({"a": 1, "b": 2}, {"a": 1}) == []
    assert mismatches({"a": 1}, {"a": 1, "b": 2}) != []


def test_arrays_need_same_length() -> None:
    assert mismatches([1, 2], [1, 2]) == []
    assert mismatches([1, 2, 3], [1, 2]) != []
    assert mismatches([{"a": 1, "x": 0}], [{"a": 1}]) == []


def test_expect_any() -> None:
    assert mismatches({"a": {}}, {"a": "expect.any(Object)"}) == []
    assert mismatches({}, {"a": "expect.any(Object)"}) != []
    assert mismatches({"a": None}, {"a": "expect.any(Object)"}) != []
    assert mismatches({"a": "s"}, {"a": "expect.any(String)"}) == []
    assert mismatches({"a": 1}, {"a": "expect.any(String)"}) != []
    assert mismatches({"a": 1.5}, {"a": "expect.any(Number)"}) == []
    assert mismatches({"a": True}, {"a": "expect.any(Number)"}) != []
    assert mismatches({"a": "1"}, {"a": "expect.any(Number)"}) != []


def test_scalars() -> None:
    assert mismatches(1.0, 1) == []
    assert mismatches(True, 1) != []
    assert mismatches("1", 1) != []


def test_empty_expected_array_needs_an_empty_array() -> None:
    assert mismatches({"name": "v", "metrics": []}, {"name": "v", "metrics": []}) == []
    assert mismatches({"name": "v"}, {"name": "v", "metrics": []}) != []
    assert mismatches({"name": "v", "metrics": []}, {"name": "v", "metrics": [{}]}) != []
