"""``send_notifications``: the SDK's call, always server-side (reference §1.4, Node semantics).

Invalid notifications are dropped (logged); the call fails with INVALID_ARGUMENT only when neither a valid
notification nor telemetry is left to send.

Loop affinity: the server's event loop.
"""

from __future__ import annotations

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from targetd_server.calls.options import CallOptions
from targetd_server.calls.request import validate_notifications
from targetd_server.calls.server_side import ServerSide
from targetd_server.engine import TelemetryProvider
from targetd_server.errors import InvalidRequestError

__all__ = ["send_notifications"]

NOTIFICATIONS_REQUIRED = (
    "Notifications array is required in request (every notification needs an id, a timestamp and a click "
    "or display type)"
)


async def send_notifications(
    call: pb.SendNotificationsRequest,
    server_side: ServerSide,
    telemetry: TelemetryProvider,
    time_remaining: float | None,
) -> pb.TargetDeliveryResponse:
    """Send the call's notifications (and the stored telemetry) through the Delivery API; the envelope
    is the server-side one. Raises :class:`InvalidRequestError` and the upstream errors."""
    if not call.HasField("request"):
        raise InvalidRequestError("Request object is required", field="request")
    request = delivery_pb2.DeliveryRequest()
    request.CopyFrom(call.request)
    validate_notifications(request)
    if not request.notifications and not request.telemetry.entries and not telemetry.has_entries():
        raise InvalidRequestError(NOTIFICATIONS_REQUIRED, field="request.notifications")
    return await server_side.decide(request, CallOptions.of(call), time_remaining, record_telemetry=False)
