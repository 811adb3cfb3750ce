"""Typed shapes of the call options, so that type checkers know when a call returns a future.

A dict literal with ``callback`` (or ``err_callback``) matches the ``Async*`` shape and the call returns a
``concurrent.futures.Future``; without, the call returns its value. Other mappings are accepted too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NotRequired, Required, TypedDict

from targetd.v1 import delivery_pb2


class CallOptionsDict(TypedDict, total=False):
    """Options of ``get_offers`` / ``get_attributes`` / ``send_notifications`` (the SDK's)."""

    request: delivery_pb2.DeliveryRequest | Mapping[str, Any]
    target_cookie: str
    target_location_hint: str
    consumer_id: str
    customer_ids: Sequence[delivery_pb2.CustomerId | Mapping[str, Any]]
    session_id: str
    decisioning_method: str
    timeout: float


class AsyncCallOptionsDict(CallOptionsDict, total=False):
    """:class:`CallOptionsDict` with ``callback``: the call returns a future."""

    callback: Required[Callable[[Any], Any]]
    err_callback: NotRequired[Callable[[BaseException], Any]]


class ErrCallbackOptionsDict(CallOptionsDict, total=False):
    """:class:`CallOptionsDict` with only ``err_callback``: the call returns a future."""

    err_callback: Required[Callable[[BaseException], Any]]
