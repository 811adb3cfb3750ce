"""The ``TargetDeliveryResponse`` envelope (reference §1.3) for every path, and ``get_attributes``
(§1.5). Pure functions over protobuf messages; no I/O.

* :func:`build_envelope` — response, request, cookies, ``analytics_details``, ``trace`` and
  ``response_tokens`` gathered in the SDK's order (execute pageLoad, execute mboxes, prefetch pageLoad,
  prefetch views, prefetch mboxes), and ``meta`` with the method **actually used** (Node).
* :func:`add_mboxes_to_request`, :func:`fill_attributes` — ``get_attributes``: add the wanted mboxes to a
  request, and flatten the JSON-offer content of a response per mbox (prefetch first, then execute; later
  keys win). ``get_value`` and its missing-key error are the clients' (``targetd_client``).

Thread affinity: none.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from google.protobuf import struct_pb2

from targetd.v1 import decisioning_service_pb2, delivery_pb2
from targetd_server.calls.cookies import create_location_hint_cookie, create_target_cookie
from targetd_server.calls.options import RequestIdentity

__all__ = [
    "add_mboxes_to_request",
    "build_envelope",
    "fill_attributes",
]


def _items(response: delivery_pb2.DeliveryResponse) -> Iterable[Any]:
    """Response items in the SDK's order: execute pageLoad, execute mboxes, prefetch pageLoad, prefetch
    views, prefetch mboxes."""
    if response.HasField("execute"):
        if response.execute.HasField("page_load"):
            yield response.execute.page_load
        yield from response.execute.mboxes
    if response.HasField("prefetch"):
        if response.prefetch.HasField("page_load"):
            yield response.prefetch.page_load
        yield from response.prefetch.views
        yield from response.prefetch.mboxes


def build_envelope(
    *,
    response: delivery_pb2.DeliveryResponse,
    request: delivery_pb2.DeliveryRequest,
    identity: RequestIdentity,
    decisioning_method: delivery_pb2.DecisioningMethod.ValueType,
    remote_mboxes: Iterable[str] = (),
    remote_views: Iterable[str] = (),
    now_ms: int | None = None,
) -> decisioning_service_pb2.TargetDeliveryResponse:
    """The ``TargetDeliveryResponse`` of one ``get_offers`` / ``send_notifications`` call.

    ``decisioning_method`` is the method actually used (on-device or server-side; hybrid never
    appears). Cookies: ``mbox`` from the identity's session and the response's tntId (always set
    on-device), ``mboxEdgeCluster`` from the identity's cluster, else the response's ``edgeHost``. The
    response and request are copied into the envelope (callers keep theirs).
    """
    envelope = decisioning_service_pb2.TargetDeliveryResponse()
    envelope.response.CopyFrom(response)
    envelope.request.CopyFrom(request)
    target_cookie = create_target_cookie(identity.session_id, response.id.tnt_id or None, now_ms=now_ms)
    if target_cookie is not None:
        envelope.target_cookie.CopyFrom(target_cookie)
    hint_cookie = create_location_hint_cookie(identity.cluster, response.edge_host or None)
    if hint_cookie is not None:
        envelope.target_location_hint_cookie.CopyFrom(hint_cookie)
    # One walk of the items (each list keeps the items' order): every field access of a message builds
    # a wrapper, so three walks cost three times as much (11 against 4 µs for one mbox).
    analytics, traces, tokens = envelope.analytics_details, envelope.trace, envelope.response_tokens
    for item in _items(envelope.response):
        if item.HasField("analytics"):
            analytics.add().CopyFrom(item.analytics)
        if item.HasField("trace"):
            traces.add().CopyFrom(item.trace)
        for option in item.options:
            if option.HasField("response_tokens"):
                tokens.add().CopyFrom(option.response_tokens)
    meta = envelope.meta
    meta.decisioning_method = decisioning_method
    meta.remote_mboxes.extend(remote_mboxes)
    meta.remote_views.extend(remote_views)
    return envelope


# ---------------------------------------------------------------------------------- get_attributes


def add_mboxes_to_request(
    mbox_names: Iterable[str], request: delivery_pb2.DeliveryRequest | None
) -> delivery_pb2.DeliveryRequest:
    """A copy of ``request`` (or of an empty request) with every name not already requested in execute or
    prefetch appended to ``execute.mboxes``, indexes continuing from the largest execute index (or 1)."""
    result = delivery_pb2.DeliveryRequest()
    if request is not None:
        result.CopyFrom(request)
    requested = {m.name for m in result.execute.mboxes} | {m.name for m in result.prefetch.mboxes}
    indexes = [m.index for m in result.execute.mboxes if m.HasField("index")]
    next_index = max(indexes) + 1 if indexes else 1
    for name in mbox_names:
        if name in requested:
            continue
        requested.add(name)
        result.execute.mboxes.add(name=name, index=next_index)
        next_index += 1
    return result


def fill_attributes(
    target: MutableMapping[str, struct_pb2.Struct], response: delivery_pb2.DeliveryResponse
) -> None:
    """Flatten the JSON offers of ``response`` into ``target`` (e.g. ``GetAttributesResponse.attributes``):
    one entry per returned mbox (empty when it has no JSON offer), prefetch mboxes first, then execute
    mboxes, keys of later offers overwriting earlier ones."""
    mboxes: list[Any] = []
    if response.HasField("prefetch"):
        mboxes.extend(response.prefetch.mboxes)
    if response.HasField("execute"):
        mboxes.extend(response.execute.mboxes)
    for mbox in mboxes:
        attributes = target[mbox.name]
        attributes.SetInParent()
        for option in mbox.options:
            if (
                option.type != delivery_pb2.OPTION_TYPE_JSON
                or option.content.WhichOneof("kind") != "struct_value"
            ):
                continue
            for key, value in option.content.struct_value.fields.items():
                attributes.fields[key].CopyFrom(value)
