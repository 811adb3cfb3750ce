"""Jest ``toMatchObject`` for plain JSON values, as the Target SDK conformance suite uses it.

* objects: the expected keys must match, extra received keys are ignored;
* arrays: same length, element-wise;
* ``"expect.any(Object|String|Number)"``: a present (non-null) value of that type;
* scalars: equal, with numbers compared by value (``1 == 1.0``) and booleans never equal to numbers.

No adaptation: the runner prints the engine's protobuf responses with every repeated field present
(``message_to_dict(..., including_empty_repeated=True)``), as a gRPC peer's generated code sees them, so an
expected ``"metrics": []`` is checked like any other array.
"""

from __future__ import annotations

from typing import Any

__all__ = ["mismatches"]

_ANY = {
    "expect.any(Object)": lambda v: isinstance(v, (dict, list)),
    "expect.any(String)": lambda v: isinstance(v, str),
    "expect.any(Number)": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def mismatches(received: Any, expected: Any, path: str = "$") -> list[str]:
    """Every difference between ``received`` and ``expected`` (empty when they match)."""
    if isinstance(expected, str) and expected in _ANY:
        if received is None or not _ANY[expected](received):
            return [f"{path}: expected {expected}, got {received!r}"]
        return []
    if isinstance(expected, dict):
        if not isinstance(received, dict):
            return [f"{path}: expected an object, got {received!r}"]
        problems: list[str] = []
        for key, value in expected.items():
            if key not in received:
                problems.append(f"{path}.{key}: missing (expected {value!r})")
                continue
            problems.extend(mismatches(received[key], value, f"{path}.{key}"))
        return problems
    if isinstance(expected, list):
        if not isinstance(received, list):
            return [f"{path}: expected an array, got {received!r}"]
        if len(received) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {len(received)}: {received!r}"]
        problems = []
        for index, (item, want) in enumerate(zip(received, expected, strict=True)):
            problems.extend(mismatches(item, want, f"{path}[{index}]"))
        return problems
    if isinstance(expected, bool) or isinstance(received, bool):
        same = isinstance(expected, bool) and isinstance(received, bool) and expected is received
    elif isinstance(expected, (int, float)) and isinstance(received, (int, float)):
        same = float(expected) == float(received)
    else:
        same = type(expected) is type(received) and expected == received
    return [] if same else [f"{path}: expected {expected!r}, got {received!r}"]
