"""The in-process Target client: the service's equivalent of the SDKs' ``TargetClient``.

It owns readiness and routes each call to the decisioning method that serves it. The gRPC layer
(``targetd_server.service``) calls it; it knows nothing of gRPC.

Loop affinity: create, start, stop and call it on the server's asyncio event loop. Readiness listeners are
called on that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from targetd.v1 import decisioning_service_pb2 as service_pb2
from targetd.v1 import delivery_pb2
from targetd_server import __version__
from targetd_server.artifacts import ArtifactProvider, ArtifactSnapshot
from targetd_server.config import Settings
from targetd_server.decisions.local import LocalOutcome, decide_locally
from targetd_server.delivery import ServerSide
from targetd_server.engine import TelemetryProvider, has_remote_dependency, needs_geo_lookup
from targetd_server.envelope import add_mboxes_to_request, call_cookie_and_session, fill_attributes
from targetd_server.errors import NotReadyError
from targetd_server.events import EventBus
from targetd_server.validation import validate_delivery_request

log = logging.getLogger("targetd.client")

_METHODS = {
    "server-side": delivery_pb2.DECISIONING_METHOD_SERVER_SIDE,
    "on-device": delivery_pb2.DECISIONING_METHOD_ON_DEVICE,
    "hybrid": delivery_pb2.DECISIONING_METHOD_HYBRID,
}


class TargetClient:
    """Hosts one Target client configuration; see the module docstring for its contract."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.method = _METHODS[settings.decisioning_method]
        self._ready = False
        self._ready_event = asyncio.Event()
        self._readiness_listeners: list[Callable[[bool], None]] = []
        # Node's TelemetryProvider: entries wait here until the next request to Target carries them.
        self.telemetry = TelemetryProvider(settings.telemetry_enabled)
        # The event bus (SubscribeEvents) and the artifact provider (`artifacts.snapshot` is the artifact
        # applied now, or None); see targetd_server.events and targetd_server.artifacts.
        self.events = EventBus(
            queue_size=settings.subscriber_queue_size,
            heartbeat_interval=settings.heartbeat_interval,
            max_stream_age=settings.max_stream_age,
            state=self._event_state,
        )
        self.artifacts = ArtifactProvider(
            settings, self.events, on_applied=self._artifact_applied, telemetry=self.telemetry
        )
        # The remote side (targetd_server.delivery): Delivery API, geo lookup, location hint, outbox.
        self.remote = ServerSide(settings, self.events.publish_geo_location_updated, self.telemetry)

    # ------------------------------------------------------------------------------------ lifecycle

    @property
    def ready(self) -> bool:
        """Whether a decision can be served now."""
        return self._ready

    def add_readiness_listener(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(ready)`` now and whenever readiness changes."""
        self._readiness_listeners.append(listener)
        listener(self._ready)

    def _set_ready(self, ready: bool) -> None:
        if ready == self._ready:
            return
        self._ready = ready
        if ready:
            self._ready_event.set()
        else:
            self._ready_event.clear()
        log.info("client %s", "ready" if ready else "not ready")
        for listener in self._readiness_listeners:
            listener(ready)

    async def start(self) -> None:
        """Start the client. Server-side decisions can be served at once; on-device and hybrid become ready
        (and ``client_ready`` is published) the moment an artifact is applied, never before."""
        self.events.start()
        self.remote.start(ping_location_hint=self.method != delivery_pb2.DECISIONING_METHOD_SERVER_SIDE)
        if self.method == delivery_pb2.DECISIONING_METHOD_SERVER_SIDE:
            self._set_ready(True)
            self.events.publish_client_ready()
        else:
            await self.artifacts.start()

    def _artifact_applied(self, snapshot: ArtifactSnapshot) -> None:
        if not self._ready:
            self._set_ready(True)
            self.events.publish_client_ready()

    def _event_state(self) -> tuple[bool, service_pb2.ArtifactInfo | None, str]:
        snapshot = self.artifacts.snapshot
        location = (
            self.artifacts.location if self.method != delivery_pb2.DECISIONING_METHOD_SERVER_SIDE else ""
        )
        return self._ready, snapshot.info if snapshot is not None else None, location

    async def begin_shutdown(self) -> None:
        """First step of a graceful stop: not ready any more, and SHUTDOWN published to event subscribers,
        whose streams get up to ``grace_period`` (at most 5 s) to deliver it. Calls still work."""
        self._set_ready(False)
        self.events.clear_ready()
        if self.events.close() is not None:
            await self.events.wait_drained(min(self.settings.grace_period, 5.0))

    async def stop(self) -> None:
        """Stop background work once no call is in flight: artifact polling, then the remote side (the
        outbox flushes what Target accepts; the rest stays on disk). Safe to call more than once."""
        await self.begin_shutdown()
        await self.artifacts.stop()
        await self.remote.close()

    # ------------------------------------------------------------------------------------ operations

    async def get_offers(
        self, call: service_pb2.GetOffersRequest, *, time_remaining: float | None = None
    ) -> service_pb2.TargetDeliveryResponse:
        """The SDK's get_offers. ``time_remaining`` is the caller's remaining deadline in seconds."""
        validate_delivery_request(call.request, present=call.HasField("request"))
        return await self._decide(call.request, call, time_remaining)

    async def get_attributes(
        self, call: service_pb2.GetAttributesRequest, *, time_remaining: float | None = None
    ) -> service_pb2.GetAttributesResponse:
        """The SDK's get_attributes: the mboxes are added to ``execute`` unless already requested, and the
        JSON offers of the response are flattened per mbox."""
        request = add_mboxes_to_request(call.mbox_names, call.request if call.HasField("request") else None)
        validate_delivery_request(request, present=True)
        envelope = await self._decide(request, call, time_remaining)
        reply = service_pb2.GetAttributesResponse()
        reply.envelope.CopyFrom(envelope)
        fill_attributes(reply.attributes, envelope.response)
        return reply

    async def _decide(
        self,
        request: delivery_pb2.DeliveryRequest,
        call: service_pb2.GetOffersRequest | service_pb2.GetAttributesRequest,
        time_remaining: float | None,
    ) -> service_pb2.TargetDeliveryResponse:
        """Route by the call's method (else the configured one). Hybrid: on-device when every requested
        mbox and view is local (a pageLoad counts as ``target-global-mbox``), else the whole request goes
        to the Delivery API, as it does before the first artifact is applied."""
        method = call.decisioning_method or self.method
        if method == delivery_pb2.DECISIONING_METHOD_ON_DEVICE:
            return (await self._on_device(request, call, time_remaining)).envelope
        snapshot = self.artifacts.snapshot
        remote_mboxes: tuple[str, ...] = ()
        remote_views: tuple[str, ...] = ()
        if snapshot is not None:
            dependency = has_remote_dependency(snapshot.compiled, request)
            if method == delivery_pb2.DECISIONING_METHOD_HYBRID and not dependency.remote_needed:
                return (await self._on_device(request, call, time_remaining)).envelope
            remote_mboxes, remote_views = dependency.remote_mboxes, dependency.remote_views
        cookie, session = call_cookie_and_session(call)
        return await self.remote.decide(
            request,
            target_cookie=cookie,
            session_id=session,
            location_hint=call.target_location_hint or None,
            customer_ids=call.customer_ids,
            time_remaining=time_remaining,
            remote_mboxes=remote_mboxes,
            remote_views=remote_views,
        )

    async def _on_device(
        self,
        request: delivery_pb2.DeliveryRequest,
        call: service_pb2.GetOffersRequest | service_pb2.GetAttributesRequest,
        time_remaining: float | None,
    ) -> LocalOutcome:
        """Decide on the applied artifact (waiting up to ``maximum_wait_ready`` for the first one); hand
        the notifications and telemetry to the outbox."""
        snapshot = self.artifacts.snapshot
        if snapshot is None:
            wait_s = self.settings.maximum_wait_ready / 1000
            if time_remaining is not None:
                wait_s = min(wait_s, time_remaining)
            if wait_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ready_event.wait(), wait_s)
            snapshot = self.artifacts.snapshot
            if snapshot is None:
                raise NotReadyError(
                    "Unable to fulfill request; decisioning engine not ready. "
                    "The rules artifact has not been applied yet: see GetStatus.last_error."
                )
        geo = None
        if needs_geo_lookup(snapshot.compiled, request):
            geo = await self.remote.lookup_geo(request, time_remaining)
        cookie, session = call_cookie_and_session(call)
        outcome = decide_locally(
            request,
            snapshot,
            settings=self.settings,
            target_cookie=cookie,
            session_id=session,
            location_hint=call.target_location_hint or self.remote.location_hint,
            geo=geo,
            telemetry=self.telemetry,
        )
        if outcome.outbound is not None:
            self.remote.enqueue(outcome.outbound, outcome.envelope)  # durable before the RPC returns
        return outcome

    async def send_notifications(
        self, call: service_pb2.SendNotificationsRequest, *, time_remaining: float | None = None
    ) -> service_pb2.TargetDeliveryResponse:
        """The SDK's send_notifications (always server-side): invalid notifications are dropped and
        logged; INVALID_ARGUMENT only when none is left."""
        return await self.remote.send_notifications(call, time_remaining=time_remaining)

    def status(self) -> service_pb2.GetStatusResponse:
        """A snapshot of readiness, configuration, the artifact and the event stream."""
        status = service_pb2.GetStatusResponse(
            ready=self._ready,
            decisioning_method=self.method,
            artifact_location=self._event_state()[2],
            version=__version__,
            client=self.settings.client,
            organization_id=self.settings.organization_id,
            subscriber_count=self.events.subscriber_count,
            last_sequence=self.events.last_sequence,
        )
        self.artifacts.fill_status(status)
        return status
