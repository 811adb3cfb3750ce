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


# What to check of a field, decided once per field descriptor (``_plan``).
_OTHER, _STR, _ENUM_KIND, _MSG = 0, 1, 2, 3
_DEEP: Final = (_MSG, _ENUM_KIND)  # kinds whose every item is looked at
_LIST, _MAP = 1, 2
_COUNT_ITEMS, _COUNT_MBOXES, _COUNT_VIEWS = 0, 1, 2


@dataclass(frozen=True, slots=True)
class _Plan:
    shape: int  # single, _LIST or _MAP
    kind: int  # of the value (a map's value): _OTHER, _STR, _ENUM_KIND or _MSG
    count: int  # which limit bounds a list: items, mboxes or views
    enum: frozenset[int]  # the valid numbers of an enum field
    enum_text: str  # "ChannelType (one of ...)" for the message


_PLANS: dict[FieldDescriptor, _Plan] = {}  # bounded by the fields of the protos


def _plan(field: FieldDescriptor) -> _Plan:
    plan = _PLANS.get(field)
    if plan is not None:
        return plan
    shape = 0
    value = field
    entry = field.message_type
    if field.is_repeated:
        shape = _LIST
        if entry is not None and entry.GetOptions().map_entry:
            shape = _MAP
            value = entry.fields_by_name["value"]
    kind = {_STRING: _STR, _ENUM: _ENUM_KIND, _MESSAGE: _MSG}.get(value.type, _OTHER)
    count = _COUNT_ITEMS
    if field.full_name in _MBOX_LISTS or field.full_name == _MBOX_NAMES:
        count = _COUNT_MBOXES
    elif field.full_name in _VIEW_LISTS:
        count = _COUNT_VIEWS
    numbers: frozenset[int] = frozenset()
    text = ""
    if kind == _ENUM_KIND:
        enum = value.enum_type
        assert enum is not None  # an enum field's type
        numbers = frozenset(enum.values_by_number)
        text = f"{enum.name} (one of {', '.join(v.name for v in enum.values)})"
    plan = _PLANS[field] = _Plan(shape, kind, count, numbers, text)
    return plan


class _Violation(Exception):
    """A limit broken; ``path`` collects the field names and positions on the way out (innermost
    first), so the walk pays nothing for paths unless something is wrong (zero-cost ``try`` in 3.11)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str | int] = []

    def at(self, name: str) -> _Violation:
        """This violation, inside field ``name``."""
        self.path.append(name)
        return self

    def error(self) -> InvalidRequestError:
        text = ""
        for part in reversed(self.path):
            if isinstance(part, int):
                text += f"[{part}]"
            elif part.startswith("["):
                text += part
            else:
                text += f".{part}" if text else part
        return InvalidRequestError(self.message, field=text)


def _over(what: str, option: str) -> _Violation:
    return _Violation(f"{what} (limit {option})")


class _Walk:
    """One walk of a call's set fields. ``strings``: False when the whole call is no longer than
    ``max_string_length`` bytes, so that no string or key in it can be (a character is at least a byte)
    and their lengths are not looked at."""

    __slots__ = ("max_items", "max_mboxes", "max_string", "max_views", "mboxes", "strings", "views")

    def __init__(self, limits: RequestLimits, *, strings: bool) -> None:
        self.max_items = limits.max_items
        self.max_mboxes = limits.max_mboxes
        self.max_views = limits.max_views
        self.max_string = limits.max_string_length
        self.strings = strings
        self.mboxes = 0
        self.views = 0

    def message(self, message: Message) -> None:
        # The hot loop of every call: singular fields (most of what is set) are checked inline.
        for field, value in message.ListFields():
            plan = _PLANS.get(field) or _plan(field)
            kind = plan.kind
            if plan.shape == 0:
                if kind == _MSG:
                    try:
                        self.message(value)
                    except _Violation as violation:
                        violation.path.append(field.name)
                        raise
                elif kind == _STR:
                    if self.strings and len(value) > self.max_string:
                        raise self.long(value).at(field.name)
                elif kind == _ENUM_KIND and value not in plan.enum:
                    raise _Violation(f"{value} is not a valid {plan.enum_text}").at(field.name)
                continue
            try:
                if plan.shape == _LIST:
                    self.count(plan, len(value))
                    if kind in _DEEP or (kind == _STR and self.strings):
                        self.items(plan, value)
                else:
                    self.map(plan, value)
            except _Violation as violation:
                violation.path.append(field.name)
                raise

    def long(self, value: str) -> _Violation:
        return _over(f"{len(value)} characters, over the limit of {self.max_string}", "max_string_length")

    def items(self, plan: _Plan, values: Any) -> None:
        position = 0
        try:
            for position, item in enumerate(values):  # noqa: B007 - read in the except clause
                self.value(plan, item)
        except _Violation as violation:
            violation.path.append(position)
            raise

    def map(self, plan: _Plan, entries: Any) -> None:
        if len(entries) > self.max_items:
            raise _over(f"{len(entries)} entries, over the limit of {self.max_items}", "max_items_per_field")
        strings = self.strings
        check = plan.kind in _DEEP or (plan.kind == _STR and strings)
        if not strings and not check:
            return
        for key, item in entries.items():
            if strings and type(key) is str and len(key) > self.max_string:
                raise _over(f"a key is over {self.max_string} characters", "max_string_length")
            if check:
                try:
                    self.value(plan, item)
                except _Violation as violation:
                    violation.path.append(_short(key))
                    raise

    def value(self, plan: _Plan, value: Any) -> None:
        kind = plan.kind
        if kind == _STR:
            if len(value) > self.max_string:
                raise self.long(value)
        elif kind == _MSG:
            self.message(value)
        elif kind == _ENUM_KIND and value not in plan.enum:
            raise _Violation(f"{value} is not a valid {plan.enum_text}")

    def count(self, plan: _Plan, count: int) -> None:
        if plan.count == _COUNT_MBOXES:
            self.mboxes += count
            if self.mboxes > self.max_mboxes:
                raise _over(f"more than {self.max_mboxes} mboxes in one request", "max_mboxes_per_request")
        elif plan.count == _COUNT_VIEWS:
            self.views += count
            if self.views > self.max_views:
                raise _over(f"more than {self.max_views} views in one request", "max_views_per_request")
        elif count > self.max_items:
            raise _over(f"{count} entries, over the limit of {self.max_items}", "max_items_per_field")


def _short(key: object) -> str:
    """A map key as it appears in a field path: printable ASCII only (the path travels in the
    ``targetd-field`` trailer, where gRPC refuses other bytes), at most 40 characters."""
    text = ascii(key)[1:-1] if isinstance(key, str) else str(key)
    return "[" + (text if len(text) <= 40 else text[:40] + "...") + "]"


def check_call(call: Message, limits: RequestLimits) -> None:
    """Check every set field of ``call`` against ``limits`` and the enums' ranges; raises
    :class:`InvalidRequestError` naming the field (e.g. ``request.execute.mboxes``) and the limit."""
    try:
        # ByteSize is C (~1 µs): a call of at most max_string_length bytes holds no string that long
        _Walk(limits, strings=call.ByteSize() > limits.max_string_length).message(call)
    except _Violation as violation:
        raise violation.error() from None
