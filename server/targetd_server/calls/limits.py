"""The limits a caller cannot exceed, checked once per call on the decoded message, before any work.

:func:`check_call` walks the fields that are set (``ListFields``; unset fields cost nothing) of a
GetOffers, GetAttributes, SendNotifications or SubscribeEvents request and raises
:class:`~targetd_server.errors.InvalidRequestError` (INVALID_ARGUMENT) naming the field and the limit at
the first violation:

* mboxes per request (``execute.mboxes`` + ``prefetch.mboxes`` + GetAttributes' ``mbox_names``):
  ``max_mboxes_per_request``; views (``prefetch.views``): ``max_views_per_request``;
* any other list or map (parameters, profile parameters, notifications, customer ids, tokens, ...):
  ``max_items_per_field`` entries;
* every string (and map key): ``max_string_length`` characters;
* enum values outside the proto's range (proto3 decodes them as plain numbers; no JSON spelling exists
  for them, so neither the engine nor the Delivery API could use them): rejected, naming the field.

The walk is bounded by the message itself (which ``max_message_bytes`` bounds, and protobuf's decoder
nests at most 100 levels deep); it stops at the first violation.

Thread affinity: none; pure functions over protobuf messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from targetd_server.config import Settings
from targetd_server.errors import InvalidRequestError

__all__ = ["RequestLimits", "check_call"]

_MBOX_LISTS: Final = frozenset({"targetd.v1.ExecuteRequest.mboxes", "targetd.v1.PrefetchRequest.mboxes"})
_VIEW_LISTS: Final = frozenset({"targetd.v1.PrefetchRequest.views"})
_MBOX_NAMES: Final = "targetd.v1.GetAttributesRequest.mbox_names"

_STRING: Final = FieldDescriptor.TYPE_STRING
_MESSAGE: Final = FieldDescriptor.TYPE_MESSAGE
_ENUM: Final = FieldDescriptor.TYPE_ENUM


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """The per-request bounds (see the module docstring); :meth:`of` reads them from the settings."""

    max_mboxes: int = 50
    max_views: int = 50
    max_items: int = 100
    max_string_length: int = 8192

    @classmethod
    def of(cls, settings: Settings) -> RequestLimits:
        """The limits configured in ``settings``."""
        return cls(
            max_mboxes=settings.max_mboxes_per_request,
            max_views=settings.max_views_per_request,
            max_items=settings.max_items_per_field,
            max_string_length=settings.max_string_length,
        )


class _Walk:
    __slots__ = ("limits", "mboxes", "views")

    def __init__(self, limits: RequestLimits) -> None:
        self.limits = limits
        self.mboxes = 0
        self.views = 0

    def message(self, message: Message, path: str) -> None:
        for field, value in message.ListFields():
            name = f"{path}.{field.name}" if path else field.name
            if field.is_repeated:
                if field.message_type is not None and field.message_type.GetOptions().map_entry:
                    self.map(field, value, name)
                else:
                    self.repeated(field, value, name)
            else:
                self.single(field, value, name)

    def repeated(self, field: FieldDescriptor, values: Any, path: str) -> None:
        count = len(values)
        full_name = field.full_name
        if full_name in _MBOX_LISTS or full_name == _MBOX_NAMES:
            self.mboxes += count
            if self.mboxes > self.limits.max_mboxes:
                raise _over(
                    path,
                    f"more than {self.limits.max_mboxes} mboxes in one request",
                    "max_mboxes_per_request",
                )
        elif full_name in _VIEW_LISTS:
            self.views += count
            if self.views > self.limits.max_views:
                raise _over(
                    path, f"more than {self.limits.max_views} views in one request", "max_views_per_request"
                )
        elif count > self.limits.max_items:
            raise _over(
                path, f"{count} entries, over the limit of {self.limits.max_items}", "max_items_per_field"
            )
        for position, value in enumerate(values):
            self.single(field, value, f"{path}[{position}]")

    def map(self, field: FieldDescriptor, entries: Any, path: str) -> None:
        if len(entries) > self.limits.max_items:
            raise _over(
                path,
                f"{len(entries)} entries, over the limit of {self.limits.max_items}",
                "max_items_per_field",
            )
        entry = field.message_type
        assert entry is not None  # a map field's entry message
        value_field = entry.fields_by_name["value"]
        for key, value in entries.items():
            if isinstance(key, str) and len(key) > self.limits.max_string_length:
                raise _over(
                    path, f"a key is over {self.limits.max_string_length} characters", "max_string_length"
                )
            self.single(value_field, value, f"{path}[{_short(key)}]")

    def single(self, field: FieldDescriptor, value: Any, path: str) -> None:
        kind = field.type
        if kind == _MESSAGE:
            self.message(value, path)
        elif kind == _STRING:
            if len(value) > self.limits.max_string_length:
                raise _over(
                    path,
                    f"{len(value)} characters, over the limit of {self.limits.max_string_length}",
                    "max_string_length",
                )
        elif kind == _ENUM:
            enum = field.enum_type
            assert enum is not None  # an enum field's type
            if enum.values_by_number.get(value) is None:
                names = ", ".join(v.name for v in enum.values)
                raise InvalidRequestError(f"{value} is not a valid {enum.name} (one of {names})", field=path)


def _over(path: str, what: str, option: str) -> InvalidRequestError:
    return InvalidRequestError(f"{what} (limit {option})", field=path)


def _short(key: object) -> str:
    """A map key as it appears in a field path: printable ASCII only (the path travels in the
    ``targetd-field`` trailer, where gRPC refuses other bytes), at most 40 characters."""
    text = ascii(key) if isinstance(key, str) else str(key)
    text = text[1:-1] if isinstance(key, str) else text
    return text if len(text) <= 40 else text[:40] + "..."


def check_call(call: Message, limits: RequestLimits) -> None:
    """Check every set field of ``call`` against ``limits`` and the enums' ranges; raises
    :class:`InvalidRequestError` naming the field (e.g. ``request.execute.mboxes``) and the limit."""
    _Walk(limits).message(call, "")
