"""The in-process Target client: the service's equivalent of the SDKs' ``TargetClient``.

It owns readiness and routes each call to the decisioning method that serves it. The gRPC layer
(``targetd_server.service``) calls it; it knows nothing of gRPC.

Loop affinity: create, start, stop and call it on the server's asyncio event loop. Readiness listeners are
called on that loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from targetd.v1 import decisioning_service_pb2 as service_pb2
from targetd.v1 import delivery_pb2
from targetd_server import __version__
from targetd_server.artifacts import ArtifactProvider, ArtifactSnapshot
from targetd_server.config import Settings
from targetd_server.errors import UnimplementedError
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
        self._readiness_listeners: list[Callable[[bool], None]] = []
        # The event bus (SubscribeEvents) and the artifact provider (`artifacts.snapshot` is the artifact
        # applied now, or None); see targetd_server.events and targetd_server.artifacts.
        self.events = EventBus(
            queue_size=settings.subscriber_queue_size,
            heartbeat_interval=settings.heartbeat_interval,
            max_stream_age=settings.max_stream_age,
            state=self._event_state,
        )
        self.artifacts = ArtifactProvider(settings, self.events, on_applied=self._artifact_applied)

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
        log.info("client %s", "ready" if ready else "not ready")
        for listener in self._readiness_listeners:
            listener(ready)

    async def start(self) -> None:
        """Start the client. Server-side decisions can be served at once; on-device and hybrid become ready
        (and ``client_ready`` is published) the moment an artifact is applied, never before."""
        self.events.start()
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

    async def stop(self) -> None:
        """Stop background work (artifact polling) and publish SHUTDOWN to event subscribers, giving their
        streams up to ``grace_period`` (at most 5 s) to deliver it; safe to call more than once."""
        self._set_ready(False)
        self.events.clear_ready()
        await self.artifacts.stop()
        if self.events.close() is not None:
            await self.events.wait_drained(min(self.settings.grace_period, 5.0))

    # ------------------------------------------------------------------------------------ operations

    async def get_offers(
        self, call: service_pb2.GetOffersRequest, *, time_remaining: float | None = None
    ) -> service_pb2.TargetDeliveryResponse:
        """The SDK's get_offers. ``time_remaining`` is the caller's remaining deadline in seconds."""
        validate_delivery_request(call.request, present=call.HasField("request"))
        raise UnimplementedError("GetOffers is not implemented yet: decisioning lands with the engine work")

    async def get_attributes(
        self, call: service_pb2.GetAttributesRequest, *, time_remaining: float | None = None
    ) -> service_pb2.GetAttributesResponse:
        """The SDK's get_attributes."""
        raise UnimplementedError("GetAttributes is not implemented yet: it lands with the engine work")

    async def send_notifications(
        self, call: service_pb2.SendNotificationsRequest, *, time_remaining: float | None = None
    ) -> service_pb2.TargetDeliveryResponse:
        """The SDK's send_notifications (always server-side)."""
        raise UnimplementedError(
            "SendNotifications is not implemented yet: it lands with the Delivery API client"
        )

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
