"""Lossless mapping between the ``targetd.v1`` messages and Adobe Target Delivery API JSON.

The Delivery API speaks camelCase JSON with lower-case enum strings (``"web"``, ``"display"``,
``"on-device"``), 64-bit integers as JSON numbers and a polymorphic ``Option.content`` (string, object or
array). ``google.protobuf.json_format`` would print enums as ``"CHANNEL_TYPE_WEB"`` and int64 as strings, so
this module walks the descriptors itself:

* keys are the fields' ``json_name`` (the spec's camelCase); the proto field name is accepted on input too;
* enums use the ``(targetd.v1.json_value)`` option of each value;
* ``google.protobuf.Value`` / ``Struct`` / ``ListValue`` are plain JSON;
* JSON ``null`` means absent; absent fields are omitted on output.

Both directions are pure and thread-safe. The descriptor walk is planned once per message type and cached.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final, TypeVar

from google.protobuf import struct_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from targetd.v1 import json_options_pb2

__all__ = ["JsonMappingError", "message_to_dict", "parse_dict"]

M = TypeVar("M", bound=Message)
# Descriptors are typed loosely: the upb runtime classes and the typeshed stubs disagree on their types.
_Desc = Any

_STRUCT: Final = "google.protobuf.Struct"
_VALUE: Final = "google.protobuf.Value"
_LIST: Final = "google.protobuf.ListValue"
_MAX_SAFE_INT: Final = 2**53

_INT_TYPES: Final = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
_FLOAT_TYPES: Final = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})


class JsonMappingError(ValueError):
    """A JSON document does not fit the message: names the path and the rule broken."""


class _EnumMap:
    __slots__ = ("to_json", "to_number")

    def __init__(self, descriptor: _Desc) -> None:
        self.to_json: dict[int, str] = {}
        self.to_number: dict[str, int] = {}
        for value in descriptor.values:
            spelling = value.GetOptions().Extensions[json_options_pb2.json_value]
            if spelling:
                self.to_json[value.number] = spelling
                self.to_number[spelling] = value.number


_enum_maps: dict[str, _EnumMap] = {}
_field_plans: dict[str, dict[str, _Desc]] = {}


def _enum_map(descriptor: _Desc) -> _EnumMap:
    found = _enum_maps.get(descriptor.full_name)
    if found is None:
        found = _enum_maps[descriptor.full_name] = _EnumMap(descriptor)
    return found


def _fields_by_key(descriptor: _Desc) -> dict[str, _Desc]:
    found = _field_plans.get(descriptor.full_name)
    if found is None:
        plan: dict[str, _Desc] = {}
        for field in descriptor.fields:
            plan[field.name] = field
            plan[field.json_name] = field
        _field_plans[descriptor.full_name] = found = plan
    return found


# ---------------------------------------------------------------------------------------------- printing


def message_to_dict(message: Message, *, including_empty_repeated: bool = False) -> dict[str, Any]:
    """Return the Delivery API JSON object (a dict) for ``message``; absent fields are omitted.

    Protobuf cannot tell an empty list from an absent one; ``including_empty_repeated`` prints every empty
    repeated (non-map) field as ``[]``, the way a gRPC peer's generated code presents it.
    """
    plan = _print_plans.get(message.DESCRIPTOR)
    if plan is None:
        plan = _print_plan(message.DESCRIPTOR)
    if plan.struct:
        return _struct_to_py(message)  # type: ignore[arg-type]
    out: dict[str, Any] = {}
    fields = plan.fields
    for field, value in message.ListFields():
        entry = fields.get(field)
        if entry is None:  # (a field the plan has not met yet: an extension)
            entry = fields[field] = _print_entry(field)
        name, convert = entry
        out[name] = value if convert is None else convert(value, including_empty_repeated)
    if including_empty_repeated:
        for name in plan.repeated:
            if name not in out:
                out[name] = []
    return out


# The printer's plan of each message type, made once from its descriptor: for each field its JSON key and
# the converter of its value (None: the value is already JSON, as strings, numbers and booleans are).
# Walking the descriptor on every call (map entry options, enum tables, well-known type names) cost
# ~3/4 of the printing time of a notification request.
_Convert = Callable[[Any, bool], Any]


class _PrintPlan:
    __slots__ = ("fields", "repeated", "struct")

    def __init__(self, descriptor: _Desc) -> None:
        self.struct = descriptor.full_name == _STRUCT
        self.fields: dict[_Desc, tuple[str, _Convert | None]] = {
            field: _print_entry(field) for field in descriptor.fields
        }
        self.repeated = tuple(
            field.json_name for field in descriptor.fields if field.is_repeated and not _is_map(field)
        )


_print_plans: dict[_Desc, _PrintPlan] = {}


def _print_plan(descriptor: _Desc) -> _PrintPlan:
    plan = _print_plans[descriptor] = _PrintPlan(descriptor)
    return plan


def _print_entry(field: _Desc) -> tuple[str, _Convert | None]:
    if _is_map(field):
        item = _single_converter(field.message_type.fields_by_name["value"])
        if item is None:
            return field.json_name, _copy_map
        return field.json_name, lambda value, empty: {key: item(one, empty) for key, one in value.items()}
    single = _single_converter(field)
    if field.is_repeated:
        if single is None:
            return field.json_name, _copy_list
        return field.json_name, lambda value, empty: [single(one, empty) for one in value]
    return field.json_name, single


def _is_map(field: _Desc) -> bool:
    return field.message_type is not None and bool(field.message_type.GetOptions().map_entry)


def _copy_map(value: Any, empty: bool) -> dict[str, Any]:
    return dict(value)


def _copy_list(value: Any, empty: bool) -> list[Any]:
    return list(value)


def _single_converter(field: _Desc) -> _Convert | None:
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        name = field.message_type.full_name
        if name == _VALUE:
            return lambda value, empty: _value_to_py(value)
        if name == _LIST:
            return lambda value, empty: [_value_to_py(item) for item in value.values]
        return lambda value, empty: message_to_dict(value, including_empty_repeated=empty)
    if kind == FieldDescriptor.TYPE_ENUM:
        spellings = _enum_map(field.enum_type).to_json
        full_name = field.full_name

        def enum_to_json(value: int, empty: bool) -> str:
            spelling = spellings.get(value)
            if spelling is None:
                raise JsonMappingError(f"{full_name}: enum value {value} has no JSON spelling")
            return spelling

        return enum_to_json
    if kind == FieldDescriptor.TYPE_BYTES:
        full_name = field.full_name

        def no_bytes(value: bytes, empty: bool) -> Any:
            raise JsonMappingError(f"{full_name}: bytes fields have no Delivery API JSON form")

        return no_bytes
    return None


def _value_to_py(value: struct_pb2.Value) -> Any:
    which = value.WhichOneof("kind")
    if which == "string_value":
        return value.string_value
    if which == "number_value":
        number = value.number_value
        # JSON has one number type; print integral values as integers, as the Delivery API does.
        if number.is_integer() and abs(number) < _MAX_SAFE_INT:
            return int(number)
        return number
    if which == "bool_value":
        return value.bool_value
    if which == "struct_value":
        return _struct_to_py(value.struct_value)
    if which == "list_value":
        return [_value_to_py(item) for item in value.list_value.values]
    return None


def _struct_to_py(struct: struct_pb2.Struct) -> dict[str, Any]:
    return {key: _value_to_py(item) for key, item in struct.fields.items()}


# ---------------------------------------------------------------------------------------------- parsing


def parse_dict(data: Mapping[str, Any], message: M, *, ignore_unknown: bool = False) -> M:
    """Fill ``message`` from a Delivery API JSON object and return it.

    Raises :class:`JsonMappingError` naming the path (e.g. ``request.context.channel``) when a key is unknown
    (unless ``ignore_unknown``), a value has the wrong type, or an enum string is not one of the spec's.
    """
    _parse_message(data, message, message.DESCRIPTOR.name, ignore_unknown)
    return message


def _parse_message(data: Any, message: Message, path: str, ignore_unknown: bool) -> None:
    descriptor = message.DESCRIPTOR
    if descriptor.full_name == _STRUCT:
        _parse_struct(data, message, path)  # type: ignore[arg-type]
        return
    if not isinstance(data, Mapping):
        raise JsonMappingError(f"{path}: expected an object, got {_kind(data)}")
    fields = _fields_by_key(descriptor)
    message.SetInParent()
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            if ignore_unknown:
                continue
            raise JsonMappingError(f"{path}: unknown field {key!r}")
        if value is None:
            continue
        child = f"{path}.{field.json_name}"
        if _is_map(field):
            _parse_map(value, message, field, child, ignore_unknown)
        elif field.is_repeated:
            if not isinstance(value, list):
                raise JsonMappingError(f"{child}: expected an array, got {_kind(value)}")
            container = getattr(message, field.name)
            for index, item in enumerate(value):
                item_path = f"{child}[{index}]"
                if item is None:
                    raise JsonMappingError(f"{item_path}: null is not allowed in an array")
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    _parse_into(item, container.add(), field, item_path, ignore_unknown)
                else:
                    container.append(_parse_scalar(item, field, item_path))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            _parse_into(value, getattr(message, field.name), field, child, ignore_unknown)
        else:
            setattr(message, field.name, _parse_scalar(value, field, child))


def _parse_into(value: Any, target: Message, field: _Desc, path: str, ignore_unknown: bool) -> None:
    name = field.message_type.full_name
    if name == _VALUE:
        _set_value(target, value, path)  # type: ignore[arg-type]
    elif name == _LIST:
        if not isinstance(value, list):
            raise JsonMappingError(f"{path}: expected an array, got {_kind(value)}")
        for index, item in enumerate(value):
            _set_value(target.values.add(), item, f"{path}[{index}]")  # type: ignore[attr-defined]
    else:
        _parse_message(value, target, path, ignore_unknown)


def _parse_map(value: Any, message: Message, field: _Desc, path: str, ignore_unknown: bool) -> None:
    if not isinstance(value, Mapping):
        raise JsonMappingError(f"{path}: expected an object, got {_kind(value)}")
    container = getattr(message, field.name)
    value_field = field.message_type.fields_by_name["value"]
    for key, item in value.items():
        item_path = f"{path}.{key}"
        if item is None:
            continue
        if value_field.type == FieldDescriptor.TYPE_MESSAGE:
            _parse_into(item, container[key], value_field, item_path, ignore_unknown)
        elif field.name in _STRINGIFIED_MAPS and isinstance(item, bool | int | float):
            container[key] = js_string(item)
        else:
            container[key] = _parse_scalar(item, value_field, item_path)


# Maps whose values Node callers send as numbers or booleans; Node's JSON-to-model step keeps them and the
# rule evaluation sees them as JavaScript strings would be built from them, so they are accepted here and
# converted as JavaScript's String() does.
_STRINGIFIED_MAPS = frozenset({"parameters", "profile_parameters"})


def js_string(value: bool | int | float) -> str:
    """``String(value)`` of JavaScript for a JSON boolean or number (``true``, ``10``, ``1.5``, ``1e+21``,
    ``1e-7``). Raises nothing; NaN/infinity cannot come from JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 10**21 else js_string(float(value))
    if value == 0:
        return "0"
    if 1e-6 <= abs(value) < 1e21:
        text = format(Decimal(repr(value)), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, _, exponent = repr(value).partition("e")  # repr uses an exponent out of [1e-4, 1e16)
    power = int(exponent)
    return f"{mantissa}e{'+' if power > 0 else '-'}{abs(power)}"


def _parse_scalar(value: Any, field: _Desc, path: str) -> Any:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        if not isinstance(value, str):
            raise JsonMappingError(f"{path}: expected a string, got {_kind(value)}")
        return value
    if kind == FieldDescriptor.TYPE_BOOL:
        if not isinstance(value, bool):
            raise JsonMappingError(f"{path}: expected true or false, got {_kind(value)}")
        return value
    if kind == FieldDescriptor.TYPE_ENUM:
        number = _enum_map(field.enum_type).to_number.get(value) if isinstance(value, str) else None
        if number is None:
            allowed = ", ".join(sorted(_enum_map(field.enum_type).to_number))
            raise JsonMappingError(f"{path}: {value!r} is not one of: {allowed}")
        return number
    if kind in _INT_TYPES:
        if isinstance(value, bool):
            raise JsonMappingError(f"{path}: expected an integer, got a boolean")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise JsonMappingError(f"{path}: expected an integer, got {_kind(value)}")
    if kind in _FLOAT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise JsonMappingError(f"{path}: expected a number, got {_kind(value)}")
        return float(value)
    raise JsonMappingError(f"{path}: field type {kind} has no Delivery API JSON form")


def _set_value(target: struct_pb2.Value, value: Any, path: str) -> None:
    if value is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise JsonMappingError(f"{path}: {value} is not a JSON number")
        target.number_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, Mapping):
        _parse_struct(value, target.struct_value, path)
    elif isinstance(value, list):
        target.list_value.SetInParent()
        for index, item in enumerate(value):
            _set_value(target.list_value.values.add(), item, f"{path}[{index}]")
    else:
        raise JsonMappingError(f"{path}: {_kind(value)} is not JSON")


def _parse_struct(value: Any, target: struct_pb2.Struct, path: str) -> None:
    if not isinstance(value, Mapping):
        raise JsonMappingError(f"{path}: expected an object, got {_kind(value)}")
    target.SetInParent()
    for key, item in value.items():
        _set_value(target.fields[key], item, f"{path}.{key}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
