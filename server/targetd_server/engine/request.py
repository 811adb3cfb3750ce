"""Request handling before a decision: the SDKs' validation, and the completed ("validated") copy of the
request that decisions, notifications and the envelope use (requestId, tntId, property token, geo)."""

from __future__ import annotations

import time
from collections.abc import Callable

from targetd.v1 import delivery_pb2
from targetd_server.engine.errors import RequestValidationError
from targetd_server.engine.geo import UNKNOWN_IP_ADDRESS, is_valid_ip

__all__ = ["Clock", "IdGenerator", "complete_request", "system_clock", "validate_delivery_request"]

Clock = Callable[[], int]
IdGenerator = Callable[[], str]


def system_clock() -> int:
    """Epoch milliseconds."""
    return time.time_ns() // 1_000_000


def validate_delivery_request(request: delivery_pb2.DeliveryRequest) -> None:
    """The SDKs' request checks; raises :class:`RequestValidationError` with their messages."""
    if request.HasField("execute"):
        execute = request.execute
        if not execute.HasField("page_load") and not execute.mboxes:
            raise RequestValidationError(
                "Either pageLoad or mboxes is required in execute", "request.execute"
            )
    if request.HasField("prefetch"):
        prefetch = request.prefetch
        if not prefetch.HasField("page_load") and not prefetch.mboxes and not prefetch.views:
            raise RequestValidationError(
                "Either views, pageLoad or mboxes is required in prefetch", "request.prefetch"
            )


def _needs_tnt_id(visitor: delivery_pb2.VisitorId) -> bool:
    if visitor.tnt_id or visitor.marketing_cloud_visitor_id or visitor.third_party_id:
        return False
    return not any(
        c.authenticated_state == delivery_pb2.AUTHENTICATED_STATE_AUTHENTICATED for c in visitor.customer_ids
    )


def complete_request(
    request: delivery_pb2.DeliveryRequest,
    *,
    location_hint: str | None,
    property_token: str | None,
    geo: delivery_pb2.Geo | None,
    new_id: IdGenerator,
) -> delivery_pb2.DeliveryRequest:
    """A copy of ``request`` completed as the SDKs do: a requestId when absent (the caller's is kept), the
    default property token, a generated ``tntId`` (``<uuid hex>.<hint>_0``) when the visitor has no id, an
    invalid ``context.geo.ipAddress`` dropped, and the looked-up ``geo`` merged into ``context.geo``."""
    validated = delivery_pb2.DeliveryRequest()
    validated.CopyFrom(request)
    if not validated.request_id:
        validated.request_id = new_id()
    if property_token and not validated.property.token:
        validated.property.token = property_token
    if _needs_tnt_id(validated.id):
        suffix = f".{location_hint}_0" if location_hint else ""
        validated.id.tnt_id = new_id().replace("-", "") + suffix
    context_geo = validated.context.geo
    if context_geo.HasField("ip_address") and not (
        context_geo.ip_address == UNKNOWN_IP_ADDRESS or is_valid_ip(context_geo.ip_address)
    ):
        context_geo.ClearField("ip_address")
    if geo is not None:
        context_geo.MergeFrom(geo)
    return validated
