"""On-device decisions: one call → the completed request → the engine over the applied artifact → the SDK
envelope, plus the one notification/telemetry request the SDK would send afterwards.

:func:`decide_on_device` is the pure core (no I/O; the shared conformance suite runs through it).
:class:`OnDevice` adds the call's I/O around it: waiting for the first artifact (``maximum_wait_ready``),
the IP geo lookup when the artifact needs it, and the durable outbox for what is to be sent.

Thread/loop affinity: :func:`decide_on_device` none; :class:`OnDevice` on the server's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import NamedTuple

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from targetd_server.artifacts import ArtifactProvider
from targetd_server.calls.cookies import cluster_from_device_id
from targetd_server.calls.envelope import build_envelope
from targetd_server.calls.location import LocationHint
from targetd_server.calls.options import CallOptions, RequestIdentity
from targetd_server.calls.request import complete_request
from targetd_server.config import Settings
from targetd_server.delivery import GeoLookup, Outbox
from targetd_server.engine import (
    CompiledArtifact,
    TelemetryProvider,
    build_notification_request,
    decide,
    needs_geo_lookup,
)
from targetd_server.errors import NotReadyError
from targetd_server.ids import new_id

__all__ = ["OnDevice", "OnDeviceOutcome", "decide_on_device"]

ENGINE_NOT_READY = "Unable to fulfill request; decisioning engine not ready."
NOT_READY = f"{ENGINE_NOT_READY} The rules artifact has not been applied yet: see GetStatus.last_error."


class OnDeviceOutcome(NamedTuple):
    """The envelope for the caller, who the request was for, and the notification/telemetry request to
    send (None: nothing)."""

    envelope: pb.TargetDeliveryResponse
    identity: RequestIdentity
    outbound: delivery_pb2.DeliveryRequest | None


def decide_on_device(
    request: delivery_pb2.DeliveryRequest,
    options: CallOptions,
    artifact: CompiledArtifact,
    *,
    settings: Settings,
    client_hint: str | None = None,
    geo: delivery_pb2.Geo | None = None,
    telemetry: TelemetryProvider | None = None,
    clock: Callable[[], int] | None = None,
    ids: Callable[[], str] = new_id,
) -> OnDeviceOutcome:
    """Decide a validated ``request`` (owned by this call; completed in place) on ``artifact``.

    ``client_hint`` is the client's location hint (configured, or learnt from the Delivery API); ``geo``
    the result of a geo lookup, if one was made; ``telemetry`` the client's store (Node's
    TelemetryProvider): this decision's entry is added and everything stored leaves with the outbound
    request. ``clock`` (epoch ms) and ``ids`` are for tests. Raises
    :class:`~targetd_server.engine.RequestValidationError` (an ``InvalidRequestError``).
    """
    identity = options.identity(client_hint, ids=ids)
    offset_given = request.context.HasField("time_offset_in_minutes")
    complete_request(request, options, identity, settings, ids=ids)
    result = decide(
        artifact,
        request,
        client=settings.client,
        session_id=identity.session_id,
        location_hint=identity.cluster,
        telemetry_enabled=telemetry.enabled if telemetry is not None else settings.telemetry_enabled,
        geo=geo,
        clock=clock,
        id_generator=ids,
    )
    envelope = build_envelope(
        response=result.response,
        request=result.request,
        identity=identity,
        decisioning_method=delivery_pb2.DECISIONING_METHOD_ON_DEVICE,
        remote_mboxes=result.remote_mboxes,
        remote_views=result.remote_views,
        now_ms=clock() if clock is not None else None,
    )
    if telemetry is None:
        entries = [result.telemetry_entry] if result.telemetry_entry is not None else []
    else:
        if result.telemetry_entry is not None:
            telemetry.add_entry(result.telemetry_entry)
        entries = telemetry.drain()
    outbound = build_notification_request(result.request, result.notifications, entries)
    if outbound is not None and not offset_given:
        # Node's notification request carries timeOffsetInMinutes only when the caller sent one
        outbound.context.ClearField("time_offset_in_minutes")
    return OnDeviceOutcome(envelope, identity, outbound)


class OnDevice:
    """The on-device path of the Target client; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        artifacts: ArtifactProvider,
        ready: asyncio.Event,
        geo: GeoLookup,
        outbox: Outbox,
        location: LocationHint,
        telemetry: TelemetryProvider,
    ) -> None:
        self._settings = settings
        self._artifacts = artifacts
        self._ready = ready
        self._geo = geo
        self._outbox = outbox
        self._location = location
        self._telemetry = telemetry
        fixed = settings.fixed_clock  # development and tests only (the differential test)
        self._clock: Callable[[], int] | None = None if fixed is None else (lambda: fixed)

    async def decide(
        self, request: delivery_pb2.DeliveryRequest, options: CallOptions, time_remaining: float | None
    ) -> pb.TargetDeliveryResponse:
        """Decide on the applied artifact (waiting up to ``maximum_wait_ready`` for the first one, and no
        longer than the caller's deadline); the notifications and telemetry are stored in the outbox
        before this returns. Raises :class:`NotReadyError` when no artifact is applied."""
        snapshot = self._artifacts.snapshot
        if snapshot is None:
            wait_s = self._settings.maximum_wait_ready / 1000
            if time_remaining is not None:
                wait_s = min(wait_s, time_remaining)
            if wait_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ready.wait(), wait_s)
            snapshot = self._artifacts.snapshot
            if snapshot is None:
                error = self._artifacts.last_error
                if error is not None and error.kind == "unsupported_version":
                    # Node's getOffers rejects with exactly this: "The decisioning artifact version
                    # (99.0.0) is not supported. This library is compatible with this major version: 1"
                    raise NotReadyError(str(error))
                raise NotReadyError(NOT_READY)
        geo = None
        if needs_geo_lookup(snapshot.compiled, request):
            geo = await self._geo.lookup(request.context.geo.ip_address, time_remaining=time_remaining)
        outcome = decide_on_device(
            request,
            options,
            snapshot.compiled,
            settings=self._settings,
            client_hint=self._location.value,
            geo=geo,
            telemetry=self._telemetry,
            clock=self._clock,
        )
        if outcome.outbound is not None:
            # stored (the group's commit) before the reply; a drop is counted and the decision served
            await asyncio.shield(self.enqueue(outcome.outbound, outcome.identity))
        return outcome.envelope

    def enqueue(
        self, outbound: delivery_pb2.DeliveryRequest, identity: RequestIdentity
    ) -> asyncio.Future[bool]:
        """Add the notifications/telemetry of an on-device decision to the outbox's open group, to be sent
        with the visitor's session and edge cluster (the cluster of its tntId, else the call's, else the
        client's hint); returns the group's commit (True: stored; False: dropped, counted). Await it
        shielded: the group's calls share it."""
        if not outbound.request_id:
            outbound.request_id = new_id()  # fixed now, so that a re-send is recognisable
        cluster = cluster_from_device_id(outbound.id.tnt_id) or identity.cluster or self._location.value
        return self._outbox.enqueue(outbound, session_id=identity.session_id, cluster=cluster)
