"""Replies of targetd → the SDK's return values. Shared by the sync and asyncio clients; pure.

The envelope is the SDK's ``TargetDeliveryResponse`` dict: ``response``, ``request`` and the analytics details
are :class:`DeliveryModel` views (attribute access, snake_case, None when absent, as the SDK's models);
cookies and ``meta`` are dicts; trace and response tokens are plain dicts.
"""

from __future__ import annotations

from typing import Any, TypedDict

from google.protobuf import struct_pb2

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from targetd_client._attributes import Attributes
from targetd_client._model import DeliveryModel
from targetd_client.json_format import message_to_dict

_METHOD_NAMES: dict[delivery_pb2.DecisioningMethod.ValueType, str] = {
    delivery_pb2.DECISIONING_METHOD_SERVER_SIDE: "server-side",
    delivery_pb2.DECISIONING_METHOD_ON_DEVICE: "on-device",
    delivery_pb2.DECISIONING_METHOD_HYBRID: "hybrid",
}


def method_name(method: int) -> str | None:
    """``"on-device"`` / ``"server-side"`` / ``"hybrid"`` for a ``DecisioningMethod`` (None if unset)."""
    return _METHOD_NAMES.get(delivery_pb2.DecisioningMethod.ValueType(method))


class Cookie(TypedDict):
    """A cookie to set on the visitor: ``{"name", "value", "maxAge"}`` (``maxAge`` in seconds)."""

    name: str
    value: str
    maxAge: int


class ResponseMeta(TypedDict):
    """``meta`` of the envelope: the method actually used and what could not be decided on-device."""

    decisioning_method: str | None
    remote_mboxes: list[str]
    remote_views: list[str]


class TargetDeliveryResponse(TypedDict, total=False):
    """What ``get_offers`` and ``send_notifications`` return (the SDK's dict)."""

    response: DeliveryModel
    request: DeliveryModel
    target_cookie: Cookie
    target_location_hint_cookie: Cookie
    analytics_details: list[DeliveryModel]
    trace: list[dict[str, Any]]
    response_tokens: list[dict[str, Any]]
    meta: ResponseMeta
    visitor_state: None


def _cookie(cookie: pb.Cookie) -> Cookie:
    return {"name": cookie.name, "value": cookie.value, "maxAge": cookie.max_age}


def _struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    return message_to_dict(struct)


def envelope_to_dict(envelope: pb.TargetDeliveryResponse) -> TargetDeliveryResponse:
    """The SDK's ``TargetDeliveryResponse`` dict for a reply's envelope (absent parts are left out)."""
    out: TargetDeliveryResponse = {"visitor_state": None}
    if envelope.HasField("response"):
        out["response"] = DeliveryModel(envelope.response)
    if envelope.HasField("request"):
        out["request"] = DeliveryModel(envelope.request)
    if envelope.HasField("target_cookie"):
        out["target_cookie"] = _cookie(envelope.target_cookie)
    if envelope.HasField("target_location_hint_cookie"):
        out["target_location_hint_cookie"] = _cookie(envelope.target_location_hint_cookie)
    out["analytics_details"] = [DeliveryModel(item) for item in envelope.analytics_details]
    out["trace"] = [_struct(item) for item in envelope.trace]
    out["response_tokens"] = [_struct(item) for item in envelope.response_tokens]
    meta = envelope.meta
    out["meta"] = {
        "decisioning_method": _METHOD_NAMES.get(meta.decisioning_method),
        "remote_mboxes": list(meta.remote_mboxes),
        "remote_views": list(meta.remote_views),
    }
    return out


def get_offers_result(reply: pb.GetOffersResponse) -> TargetDeliveryResponse:
    """The ``get_offers`` return value."""
    return envelope_to_dict(reply.envelope)


def send_notifications_result(reply: pb.SendNotificationsResponse) -> TargetDeliveryResponse:
    """The ``send_notifications`` return value."""
    return envelope_to_dict(reply.envelope)


def get_attributes_result(reply: pb.GetAttributesResponse) -> Attributes:
    """The ``get_attributes`` return value."""
    attributes = {name: _struct(struct) for name, struct in reply.attributes.items()}
    return Attributes(attributes, envelope_to_dict(reply.envelope))
