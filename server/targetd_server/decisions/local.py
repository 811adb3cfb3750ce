"""On-device decisions: one call → the engine over the applied artifact snapshot → the SDK envelope.

Pure CPU work on protobuf messages (no JSON, no copies of the artifact): the servicer's deserialised request
is completed in place (it belongs to this call) and the engine builds the response messages directly.
Display notifications and telemetry come back as one outbound Delivery request for the caller to hand to
the durable outbox.

Thread/loop affinity: none; the functions are safe to call from any thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from targetd_server.artifacts import ArtifactSnapshot
from targetd_server.config import Settings
from targetd_server.engine import (
    RequestValidationError,
    TelemetryProvider,
    build_notification_request,
    decide,
)
from targetd_server.engine.request import new_id
from targetd_server.envelope import RequestIdentity, on_device_envelope, resolve_identity
from targetd_server.errors import InvalidRequestError

__all__ = ["LocalOutcome", "decide_locally", "prepare_identity"]


@dataclass(frozen=True, slots=True)
class LocalOutcome:
    """The envelope for the caller, and the notification/telemetry request to send (None: nothing)."""

    envelope: pb.TargetDeliveryResponse
    outbound: delivery_pb2.DeliveryRequest | None


def prepare_identity(
    request: delivery_pb2.DeliveryRequest,
    *,
    target_cookie: str | None,
    session_id: str | None,
    location_hint: str | None,
    settings: Settings,
    ids: Callable[[], str] = new_id,
) -> RequestIdentity:
    """Resolve session, device id and cluster from the cookie and options, and complete ``request`` in place
    as the SDKs do before deciding (both paths): tntId from the ``PC`` cookie, the configured
    ``environmentId``."""
    identity = resolve_identity(target_cookie, session_id=session_id, location_hint=location_hint, new_id=ids)
    identity.apply_to(request)
    if settings.environment_id is not None and not request.HasField("environment_id"):
        request.environment_id = settings.environment_id
    return identity


def decide_locally(
    request: delivery_pb2.DeliveryRequest,
    snapshot: ArtifactSnapshot,
    *,
    settings: Settings,
    target_cookie: str | None = None,
    session_id: str | None = None,
    location_hint: str | None = None,
    geo: delivery_pb2.Geo | None = None,
    telemetry: TelemetryProvider | None = None,
) -> LocalOutcome:
    """Decide ``request`` on-device. ``request`` is completed in place (pass one this call owns).

    ``location_hint`` is the call's hint or the configured one; ``geo`` is a geo lookup result, if one was
    made. ``telemetry`` is the client's telemetry store (Node's TelemetryProvider): this decision's entry
    is added and everything stored (e.g. artifact-download entries) leaves with the outbound request.
    Raises :class:`InvalidRequestError` when the engine rejects the request.
    """
    identity = prepare_identity(
        request,
        target_cookie=target_cookie,
        session_id=session_id,
        location_hint=location_hint,
        settings=settings,
    )
    try:
        result = decide(
            snapshot.compiled,
            request,
            client=settings.client,
            session_id=identity.session_id,
            location_hint=identity.cluster,
            property_token=settings.property_token,
            telemetry_enabled=settings.telemetry_enabled,
            geo=geo,
        )
    except RequestValidationError as error:
        raise InvalidRequestError(str(error), field=error.field) from None
    envelope = on_device_envelope(
        response=result.response,
        request=result.request,
        identity=identity,
        remote_mboxes=result.remote_mboxes,
        remote_views=result.remote_views,
    )
    if telemetry is None:
        entries = [result.telemetry_entry] if result.telemetry_entry is not None else []
    else:
        if result.telemetry_entry is not None:
            telemetry.add_entry(result.telemetry_entry)
        entries = telemetry.drain()
    outbound = build_notification_request(result.request, result.notifications, entries)
    return LocalOutcome(envelope, outbound)
