"""Pure helpers shared by the on-device and the server-side paths (Node SDK semantics, no I/O).

* Cookies (reference §5): parse the visitor's ``mbox`` cookie (``name#value#expires`` parts joined by
  ``|``, URL-encoded with ``encodeURIComponent``, ``expires`` in epoch seconds, expired parts dropped) into
  the session id, the device id (``PC`` → tntId) and the edge cluster; produce the ``mbox`` cookie
  (``session`` for 1860 s, ``PC`` for 63244800 s) and the ``mboxEdgeCluster`` cookie.
* The ``TargetDeliveryResponse`` envelope (§1.3): response, request, cookies, ``analytics_details``,
  ``trace`` and ``response_tokens`` gathered in the SDK's order (execute pageLoad, execute mboxes, prefetch
  pageLoad, prefetch views, prefetch mboxes), and ``meta`` with the method **actually used** (Node).
* ``get_attributes`` (§1.5): add the wanted mboxes to a request, and flatten the JSON-offer content of a
  response per mbox (prefetch first, then execute; later keys win); a missing key raises
  :class:`MissingAttributeError`, which the caller reports.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from google.protobuf import struct_pb2

from targetd.v1 import decisioning_service_pb2, delivery_pb2

__all__ = [
    "DEVICE_ID_COOKIE",
    "DEVICE_ID_MAX_AGE",
    "LOCATION_HINT_COOKIE",
    "LOCATION_HINT_MAX_AGE",
    "SESSION_ID_COOKIE",
    "SESSION_ID_MAX_AGE",
    "TARGET_COOKIE",
    "MissingAttributeError",
    "ParsedCookies",
    "RequestIdentity",
    "add_mboxes_to_request",
    "attribute_value",
    "build_envelope",
    "cluster_from_device_id",
    "cluster_from_edge_host",
    "create_location_hint_cookie",
    "create_target_cookie",
    "fill_attributes",
    "on_device_envelope",
    "parse_target_cookie",
    "resolve_identity",
]

TARGET_COOKIE = "mbox"
SESSION_ID_COOKIE = "session"
DEVICE_ID_COOKIE = "PC"
LOCATION_HINT_COOKIE = "mboxEdgeCluster"
SESSION_ID_MAX_AGE = 1860
DEVICE_ID_MAX_AGE = 63244800
LOCATION_HINT_MAX_AGE = 1860

# encodeURIComponent leaves A-Z a-z 0-9 - _ . ! ~ * ' ( ) unescaped.
_URI_COMPONENT_SAFE = "-_.!~*'()"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _now_seconds(now_ms: int) -> int:
    return math.ceil(now_ms / 1000)


def _encode(text: str) -> str:
    return quote(text, safe=_URI_COMPONENT_SAFE)


@dataclass(frozen=True, slots=True)
class ParsedCookies:
    """The live parts of an ``mbox`` cookie: ``{name: (value, expires_seconds)}`` plus shortcuts."""

    parts: Mapping[str, tuple[str, int]]

    @property
    def session_id(self) -> str | None:
        """The ``session`` part."""
        part = self.parts.get(SESSION_ID_COOKIE)
        return part[0] if part else None

    @property
    def device_id(self) -> str | None:
        """The ``PC`` part (the tntId, e.g. ``338e...acea0.28_0``)."""
        part = self.parts.get(DEVICE_ID_COOKIE)
        return part[0] if part else None

    @property
    def cluster(self) -> str | None:
        """The edge cluster encoded in the device id (``abc.35_0`` → ``35``)."""
        return cluster_from_device_id(self.device_id)


def parse_target_cookie(value: str | None, *, now_ms: int | None = None) -> ParsedCookies:
    """Parse the ``mbox`` cookie; malformed and expired parts are ignored, never an error."""
    parts: dict[str, tuple[str, int]] = {}
    if value:
        now_s = _now_seconds(_now_ms() if now_ms is None else now_ms)
        for raw in value.split("|"):
            pieces = raw.split("#")
            if len(pieces) < 3:
                continue
            try:
                expires = int(pieces[2])
            except ValueError:
                continue
            if now_s <= expires:
                parts[unquote(pieces[0])] = (unquote(pieces[1]), expires)
    return ParsedCookies(parts)


@dataclass(frozen=True, slots=True)
class RequestIdentity:
    """Who the request is for, from the cookie and the call's options (both decisioning paths)."""

    session_id: str
    device_id: str | None
    cluster: str | None

    def apply_to(self, request: delivery_pb2.DeliveryRequest) -> None:
        """Default ``request.id.tntId`` to the device id of the ``PC`` cookie (the SDKs' behaviour)."""
        if self.device_id and not request.id.tnt_id:
            request.id.tnt_id = self.device_id


def call_cookie_and_session(call: Any) -> tuple[str | None, str | None]:
    """The ``target_cookie`` and ``session_id`` options of a GetOffers / GetAttributes / SendNotifications
    request, None where the caller did not set them."""
    cookie = call.target_cookie if call.HasField("target_cookie") else None
    session = call.session_id if call.HasField("session_id") else None
    return cookie, session


def resolve_identity(
    target_cookie: str | None,
    *,
    session_id: str | None,
    location_hint: str | None,
    new_id: Callable[[], str],
    now_ms: int | None = None,
) -> RequestIdentity:
    """Session id: the cookie's ``session`` > ``session_id`` option > a new id. Device id: the ``PC``
    part. Cluster: the one in the device id, else ``location_hint``."""
    cookies = parse_target_cookie(target_cookie, now_ms=now_ms)
    session = cookies.session_id or session_id or new_id()
    return RequestIdentity(session, cookies.device_id, cookies.cluster or location_hint or None)


def cluster_from_device_id(device_id: str | None) -> str | None:
    """``<id>.<cluster>_<n>`` → ``cluster`` (None when the id has no such suffix)."""
    if not device_id:
        return None
    pieces = device_id.split(".")
    if len(pieces) != 2 or not pieces[1]:
        return None
    node = pieces[1].split("_")
    if len(node) != 2 or not node[0]:
        return None
    return node[0]


def cluster_from_edge_host(edge_host: str | None) -> str | None:
    """``mboxedge28.tt.omtrdc.net`` → ``28`` (None for any other shape)."""
    if not edge_host:
        return None
    pieces = edge_host.split(".")
    if len(pieces) != 4 or not pieces[0].startswith("mboxedge"):
        return None
    cluster = pieces[0][len("mboxedge") :]
    return cluster or None


def create_target_cookie(
    session_id: str | None, tnt_id: str | None, *, now_ms: int | None = None
) -> decisioning_service_pb2.Cookie | None:
    """The ``mbox`` cookie: ``session#<sid>#<now+1860>|PC#<tntId>#<now+63244800>`` (each part only when
    its value is set; ``now`` in whole seconds rounded up), ``maxAge`` =
    ``ceil(|max(expires) * 1000 - now_ms| / 1000)`` as Node computes it. None when there is nothing."""
    now = _now_ms() if now_ms is None else now_ms
    now_s = _now_seconds(now)
    parts: list[tuple[str, str, int]] = []
    if session_id:
        parts.append((SESSION_ID_COOKIE, session_id, now_s + SESSION_ID_MAX_AGE))
    if tnt_id:
        parts.append((DEVICE_ID_COOKIE, tnt_id, now_s + DEVICE_ID_MAX_AGE))
    if not parts:
        return None
    value = "|".join(f"{_encode(name)}#{_encode(text)}#{expires}" for name, text, expires in parts)
    max_expires = max(expires for _, _, expires in parts)
    max_age = math.ceil(abs(max_expires * 1000 - now) / 1000)
    return decisioning_service_pb2.Cookie(name=TARGET_COOKIE, value=value, max_age=max_age)


def create_location_hint_cookie(
    request_cluster: str | None, edge_host: str | None = None
) -> decisioning_service_pb2.Cookie | None:
    """``mboxEdgeCluster`` for 1860 s: the request's cluster (PC cookie or location hint), else the one
    in the response's ``edgeHost``; None when neither is known."""
    cluster = request_cluster or cluster_from_edge_host(edge_host)
    if not cluster:
        return None
    return decisioning_service_pb2.Cookie(
        name=LOCATION_HINT_COOKIE, value=cluster, max_age=LOCATION_HINT_MAX_AGE
    )


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
    decisioning_method: delivery_pb2.DecisioningMethod.ValueType,
    target_cookie: decisioning_service_pb2.Cookie | None = None,
    target_location_hint_cookie: decisioning_service_pb2.Cookie | None = None,
    remote_mboxes: Iterable[str] = (),
    remote_views: Iterable[str] = (),
) -> decisioning_service_pb2.TargetDeliveryResponse:
    """The ``TargetDeliveryResponse`` of one ``get_offers`` / ``send_notifications`` call.

    ``decisioning_method`` is the method actually used (on-device or server-side; hybrid never
    appears). The response and request are copied into the envelope (callers keep theirs).
    """
    envelope = decisioning_service_pb2.TargetDeliveryResponse()
    envelope.response.CopyFrom(response)
    envelope.request.CopyFrom(request)
    if target_cookie is not None:
        envelope.target_cookie.CopyFrom(target_cookie)
    if target_location_hint_cookie is not None:
        envelope.target_location_hint_cookie.CopyFrom(target_location_hint_cookie)
    for item in _items(envelope.response):
        if item.HasField("analytics"):
            envelope.analytics_details.add().CopyFrom(item.analytics)
    for item in _items(envelope.response):
        if item.HasField("trace"):
            envelope.trace.add().CopyFrom(item.trace)
    for item in _items(envelope.response):
        for option in item.options:
            if option.HasField("response_tokens"):
                envelope.response_tokens.add().CopyFrom(option.response_tokens)
    meta = envelope.meta
    meta.decisioning_method = decisioning_method
    meta.remote_mboxes.extend(remote_mboxes)
    meta.remote_views.extend(remote_views)
    return envelope


def on_device_envelope(
    *,
    response: delivery_pb2.DeliveryResponse,
    request: delivery_pb2.DeliveryRequest,
    identity: RequestIdentity,
    remote_mboxes: Iterable[str] = (),
    remote_views: Iterable[str] = (),
    now_ms: int | None = None,
) -> decisioning_service_pb2.TargetDeliveryResponse:
    """The envelope of an on-device decision: ``mbox`` cookie from the session and the response's tntId
    (always set on-device), ``mboxEdgeCluster`` from the request's cluster, meta ``on-device``."""
    return build_envelope(
        response=response,
        request=request,
        decisioning_method=delivery_pb2.DECISIONING_METHOD_ON_DEVICE,
        target_cookie=create_target_cookie(identity.session_id, response.id.tnt_id or None, now_ms=now_ms),
        target_location_hint_cookie=create_location_hint_cookie(identity.cluster, response.edge_host or None),
        remote_mboxes=remote_mboxes,
        remote_views=remote_views,
    )


# ---------------------------------------------------------------------------------- get_attributes


class MissingAttributeError(LookupError):
    """``get_value`` of a key that the mbox's JSON offers do not have (Node returns this as an Error)."""

    def __init__(self, mbox: str, key: str) -> None:
        self.mbox = mbox
        self.key = key
        super().__init__(f"Attribute '{key}' does not exist for mbox '{mbox}'")


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


def attribute_value(attributes: Mapping[str, struct_pb2.Struct], mbox: str, key: str) -> struct_pb2.Value:
    """``get_value(mbox, key)``; raises :class:`MissingAttributeError` when the key does not exist."""
    struct = attributes.get(mbox)
    if struct is None or key not in struct.fields:
        raise MissingAttributeError(mbox, key)
    return struct.fields[key]
