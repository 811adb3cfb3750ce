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
from targetd_server.config import Settings
from targetd_server.errors import UnimplementedError
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
        when an artifact is applied (the artifact provider is not part of this build yet)."""
        if self.method == delivery_pb2.DECISIONING_METHOD_SERVER_SIDE:
            self._set_ready(True)

    async def stop(self) -> None:
        """Stop background work; safe to call more than once."""
        self._set_ready(False)

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
        """A snapshot of readiness and configuration."""
        return service_pb2.GetStatusResponse(
            ready=self._ready,
            decisioning_method=self.method,
            artifact_location=self.settings.artifact_location or "",
            version=__version__,
            client=self.settings.client,
            organization_id=self.settings.organization_id,
        )
