"""What one notification request of the sender carries: rows merged per visitor and context (the same
session, cluster and request but for notifications and telemetry; at most ``MAX_MERGED`` rows), and their
Delivery API JSON, the mapping of each request context kept for the next request with the same context.

Thread/loop affinity: none (an :class:`Encoder` is used from one thread).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

import orjson

from targetd.json_format import message_to_dict
from targetd.v1 import delivery_pb2
from targetd_server.delivery.store import Row

__all__ = ["CONTEXT_CACHE", "MAX_MERGED", "Encoder", "Group", "merge_key"]

CONTEXT_CACHE: Final = 256
"""Distinct request contexts whose JSON the sender keeps (see :class:`Encoder`)."""
MAX_MERGED: Final = 50
"""Rows merged into one Delivery request at most (one visitor and context)."""


@dataclass(slots=True)
class Group:
    rows: list[Row]
    request: delivery_pb2.DeliveryRequest
    session_id: str
    cluster: str | None
    context_key: bytes | None = None

    @property
    def ids(self) -> list[int]:
        return [row.id for row in self.rows]


_PER_ROW: Final = frozenset({"notifications", "telemetry", "request_id"})
"""The fields that differ between rows that may share one Delivery request."""


def merge_key(row: Row, request: delivery_pb2.DeliveryRequest) -> tuple[bytes, bytes | None]:
    """Rows that may share one Delivery request have the same key: the same session, cluster, and request
    but for the notifications, telemetry and request id. Returns ``(key, the context's serialised
    bytes)`` (None without a context), the latter for :meth:`Encoder.body`, which would otherwise
    serialise it again. Each field is serialised on its own (number, length, bytes): no trimmed copy."""
    parts = [f"{row.session_id or ''}\x00{row.cluster or ''}\x00".encode()]
    context = None
    for field, value in request.ListFields():
        name = field.name
        if name in _PER_ROW:
            continue
        if field.message_type is not None:  # (no repeated message field but notifications)
            data = value.SerializeToString(deterministic=True)
            if name == "context":
                context = data
        else:
            data = repr(value).encode()
        parts.append(b"%d:%d:" % (field.number, len(data)))
        parts.append(data)
    return b"".join(parts), context


class Encoder:
    """Delivery API JSON of a notification request, the context's mapping kept for the next request with
    the same context (``CONTEXT_CACHE`` of them, least recently used dropped): the visitors of one site
    share a few contexts, and mapping one is a quarter of a request's cost."""

    def __init__(self) -> None:
        self._contexts: OrderedDict[bytes, Any] = OrderedDict()

    def body(self, request: delivery_pb2.DeliveryRequest, context_key: bytes | None = None) -> bytes:
        """The JSON bytes; ``request`` loses its context (the caller is done with it). ``context_key``:
        the context's deterministic serialisation when the caller has it (:func:`merge_key`). Raises
        JsonMappingError/ValueError/TypeError for content that cannot become JSON."""
        if not request.HasField("context"):
            return orjson.dumps(message_to_dict(request))
        key = (
            context_key if context_key is not None else request.context.SerializeToString(deterministic=True)
        )
        context = self._contexts.get(key)
        if context is None:
            context = message_to_dict(request.context)
            self._contexts[key] = context
            if len(self._contexts) > CONTEXT_CACHE:
                self._contexts.popitem(last=False)
        else:
            self._contexts.move_to_end(key)
        request.ClearField("context")
        data = message_to_dict(request)
        data["context"] = context
        return orjson.dumps(data)
