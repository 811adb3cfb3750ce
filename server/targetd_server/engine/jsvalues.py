"""JavaScript value semantics that json-logic-js inherits: truthiness, ``String()``, ``Number()``, loose and
strict equality and the abstract relational comparison. ``null`` and ``undefined`` are both ``None``."""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["is_number", "js_equal", "js_less", "js_str", "js_strict_equal", "js_to_number", "truthy"]

_NUMBER_RE = re.compile(r"^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|Infinity)$")


def truthy(value: Any) -> bool:
    """json-logic-js ``truthy``: JS truthiness, but ``[]`` is falsy."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, (int, float)):
        return not (value == 0 or math.isnan(value))
    if isinstance(value, str):
        return value != ""
    if isinstance(value, list):
        return len(value) > 0
    return True


def js_str(value: Any) -> str:
    """JavaScript ``String(value)``."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, list):
        return ",".join("" if item is None else js_str(item) for item in value)
    return "[object Object]"


def js_to_number(value: Any) -> float:
    """JavaScript ``Number(value)`` (``ToNumber``)."""
    if value is None:
        return 0.0
    if value is True:
        return 1.0
    if value is False:
        return 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return 0.0
        if _NUMBER_RE.match(text):
            return float(text)
        lowered = text.lower()
        try:
            if lowered.startswith("0x"):
                return float(int(text[2:], 16))
            if lowered.startswith("0o"):
                return float(int(text[2:], 8))
            if lowered.startswith("0b"):
                return float(int(text[2:], 2))
        except ValueError:
            return math.nan
        return math.nan
    if isinstance(value, list):
        return js_to_number(js_str(value))
    return math.nan


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _to_primitive(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return js_str(value)
    return value


def js_equal(a: Any, b: Any) -> bool:
    """JavaScript loose equality ``a == b`` (``null`` and ``undefined`` are both ``None``)."""
    if a is None or b is None:
        return a is None and b is None
    a_is_str = isinstance(a, str)
    b_is_str = isinstance(b, str)
    if a_is_str and b_is_str:
        return bool(a == b)
    if isinstance(a, bool) and isinstance(b, bool):
        return a is b
    if is_number(a) and is_number(b):
        return bool(a == b)
    if isinstance(a, (list, dict)) and isinstance(b, (list, dict)):
        return a is b
    if isinstance(a, bool):
        return js_equal(1 if a else 0, b)
    if isinstance(b, bool):
        return js_equal(a, 1 if b else 0)
    if isinstance(a, (list, dict)):
        return js_equal(_to_primitive(a), b)
    if isinstance(b, (list, dict)):
        return js_equal(a, _to_primitive(b))
    # number vs string
    return js_to_number(a) == js_to_number(b)


def js_strict_equal(a: Any, b: Any) -> bool:
    """JavaScript ``a === b``."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if is_number(a) and is_number(b):
        return bool(a == b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
        return a is b
    return False


def js_less(a: Any, b: Any, or_equal: bool = False) -> bool:
    """JavaScript ``a < b`` (or ``a <= b``): strings compare lexically, anything else numerically."""
    if is_number(a) and is_number(b):
        return bool(a <= b) if or_equal else bool(a < b)
    a = _to_primitive(a)
    b = _to_primitive(b)
    if isinstance(a, str) and isinstance(b, str):
        return a <= b if or_equal else a < b
    x = js_to_number(a)
    y = js_to_number(b)
    return x <= y if or_equal else x < y
