"""Read-only views of Delivery API messages that read like the SDK's models.

``response["response"]`` of ``get_offers`` is a :class:`DeliveryModel` over the ``DeliveryResponse``
message. As with the SDK's models, attributes are the snake_case field names (the Delivery API's camelCase
names work too, e.g. ``option.eventToken``), an absent field reads as ``None``, and ``Option.content`` /
trace / response tokens are plain Python values (dict, list, str, number). A view can also be indexed like
the Delivery API JSON (``model["prefetch"]["mboxes"][0]["options"][0]["eventToken"]``). Enum fields read as
the enum constants of this package (``option.type == OptionType.JSON``). ``to_dict()`` returns the Delivery
API JSON; ``message`` is the underlying protobuf message. Views are immutable and safe to share between
threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from google.protobuf import struct_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from targetd_client.json_format import message_to_dict

__all__ = ["DeliveryModel"]

_PLAIN: Final = frozenset({"google.protobuf.Value", "google.protobuf.Struct", "google.protobuf.ListValue"})
_fields: dict[str, dict[str, Any]] = {}


def _by_name(message: Message) -> dict[str, Any]:
    descriptor = message.DESCRIPTOR
    found = _fields.get(descriptor.full_name)
    if found is None:
        found = {}
        for field in descriptor.fields:
            found[field.name] = field
            found[field.json_name] = field
        _fields[descriptor.full_name] = found
    return found


def _is_map(field: Any) -> bool:
    return field.message_type is not None and bool(field.message_type.GetOptions().map_entry)


def well_known_to_py(value: Any) -> Any:
    """A ``google.protobuf.Value`` / ``Struct`` / ``ListValue`` as plain Python (integral numbers as int)."""
    name = value.DESCRIPTOR.full_name
    if name == "google.protobuf.Struct":
        return message_to_dict(value)
    holder = struct_pb2.Struct()
    if name == "google.protobuf.ListValue":
        holder.fields["v"].list_value.CopyFrom(value)
    else:
        holder.fields["v"].CopyFrom(value)
    return message_to_dict(holder)["v"]


def _read(field: Any, value: Any) -> Any:
    if field.type != FieldDescriptor.TYPE_MESSAGE:
        return value
    if field.message_type.full_name in _PLAIN:
        return well_known_to_py(value)
    return DeliveryModel(value)


class DeliveryModel:
    """A read-only, SDK-model-like view of a Delivery API message (see the module docstring)."""

    __slots__ = ("_message",)

    def __init__(self, message: Message) -> None:
        object.__setattr__(self, "_message", message)

    @property
    def message(self) -> Message:
        """The protobuf message this view reads."""
        message: Message = self._message
        return message

    def _get(self, name: str) -> Any:
        field = _by_name(self._message).get(name)
        if field is None:
            raise KeyError(name)
        message = self._message
        value = getattr(message, field.name)
        if _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            return {key: _read(value_field, item) for key, item in value.items()} if value else None
        if field.is_repeated:
            return [_read(field, item) for item in value] if value else None
        if field.has_presence and not message.HasField(field.name):
            return None
        return _read(field, value)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._get(name)
        except KeyError:
            raise AttributeError(f"{self._message.DESCRIPTOR.name} has no attribute {name!r}") from None

    def __getitem__(self, key: str) -> Any:
        value = self._get(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """``model[key]``, or ``default`` when the field is absent."""
        try:
            value = self._get(key)
        except KeyError:
            return default
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(message_to_dict(self._message))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Delivery API responses are read-only; build requests with the message types")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DeliveryModel):
            return bool(self._message == other._message)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """The Delivery API JSON (camelCase keys, enum strings such as ``"json"``)."""
        return message_to_dict(self._message)

    def __repr__(self) -> str:
        return f"{self._message.DESCRIPTOR.name}({self.to_dict()!r})"
