"""Small, fast conversions between plain JSON values and ``google.protobuf`` Value/Struct messages.

Used at artifact compile time (consequences → messages) and for trace payloads; the decision path itself
copies pre-serialised messages instead of converting JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2

__all__ = ["fill_struct", "fill_value", "struct_to_python", "value_to_python"]


def fill_value(target: struct_pb2.Value, value: Any) -> None:
    """Set ``target`` to the JSON ``value`` (dict, list, str, number, bool or None)."""
    if value is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif value is True or value is False:
        target.bool_value = value
    elif isinstance(value, (int, float)):
        target.number_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, Mapping):
        fill_struct(target.struct_value, value)
    elif isinstance(value, (list, tuple)):
        target.list_value.SetInParent()
        values = target.list_value.values
        for item in value:
            fill_value(values.add(), item)
    else:
        target.string_value = str(value)


def fill_struct(target: struct_pb2.Struct, mapping: Mapping[str, Any]) -> None:
    """Merge the JSON object ``mapping`` into ``target``."""
    if not mapping:
        target.SetInParent()
        return
    fields = target.fields
    for key, item in mapping.items():
        fill_value(fields[str(key)], item)


def value_to_python(value: struct_pb2.Value) -> Any:
    """The plain JSON value held by ``value``."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_python(value.struct_value)
    if kind == "list_value":
        return [value_to_python(item) for item in value.list_value.values]
    return None


def struct_to_python(struct: struct_pb2.Struct) -> dict[str, Any]:
    """The plain JSON object held by ``struct``."""
    return {key: value_to_python(item) for key, item in struct.fields.items()}
