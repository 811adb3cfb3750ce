"""Server-side decisions: the completed request through the Delivery API, the SDK envelope back.

Every Delivery API call carries the entries of the client's telemetry store (Node's TelemetryProvider),
and each server-side decision adds its own (mode ``edge``). The start-up location-hint ping lives here
too: it is a server-side call of an empty request (session ``ping123``).

Loop affinity: the server's event loop.
"""

from __future__ import annotations

import logging
import time

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from targetd_server.calls.envelope import build_envelope
from targetd_server.calls.location import LOCATION_HINT_SESSION_ID, LocationHint
from targetd_server.calls.options import CallOptions
from targetd_server.calls.request import complete_request
from targetd_server.config import Settings
from targetd_server.delivery import DeliveryApi
from targetd_server.engine import TelemetryProvider, delivery_request_entry

log = logging.getLogger("targetd.calls")

__all__ = ["ServerSide"]


class ServerSide:
    """The server-side path of the Target client; see the module docstring."""

    def __init__(
        self, settings: Settings, api: DeliveryApi, location: LocationHint, telemetry: TelemetryProvider
    ) -> None:
        self._settings = settings
        self._api = api
        self._location = location
        self._telemetry = telemetry

    async def decide(
        self,
        request: delivery_pb2.DeliveryRequest,
        options: CallOptions,
        time_remaining: float | None,
        *,
        remote_mboxes: tuple[str, ...] = (),
        remote_views: tuple[str, ...] = (),
        record_telemetry: bool = True,
    ) -> pb.TargetDeliveryResponse:
        """Decide a validated ``request`` (owned by this call; completed in place) with the Delivery API;
        with ``record_telemetry``, add this call's telemetry entry to the store. ``remote_*`` go to
        ``meta`` (hybrid). Raises the upstream errors of :class:`DeliveryApi`."""
        started = time.perf_counter()
        identity = options.identity(self._location.value)
        complete_request(request, options, identity, self._settings)
        stored = self._telemetry.drain()  # Node: the store leaves with the next call...
        if stored:
            request.telemetry.entries.extend(stored)
        try:
            response = await self._api.execute(
                request,
                session_id=identity.session_id,
                cluster=identity.cluster,
                time_remaining=time_remaining,
            )
        except BaseException:
            for entry in stored:  # ... and, unlike Node, comes back when that call fails
                self._telemetry.add_entry(entry)
            raise
        self._location.learn(identity.cluster, response)
        if record_telemetry and (request.HasField("execute") or request.HasField("prefetch")):
            self._telemetry.add_entry(
                delivery_request_entry(
                    request,
                    timestamp_ms=time.time_ns() // 1_000_000,
                    execution_ms=(time.perf_counter() - started) * 1000,
                    decisioning_method=delivery_pb2.DECISIONING_METHOD_SERVER_SIDE,
                )
            )
        return build_envelope(
            response=response,
            request=request,
            identity=identity,
            decisioning_method=delivery_pb2.DECISIONING_METHOD_SERVER_SIDE,
            remote_mboxes=remote_mboxes,
            remote_views=remote_views,
        )

    async def ping_location_hint(self) -> str | None:
        """The SDKs' start-up request for an edge cluster: an empty request with session ``ping123``; the
        cluster of the answer becomes the client's hint. Failures are logged, never raised."""
        options = CallOptions(session_id=LOCATION_HINT_SESSION_ID)
        try:
            envelope = await self.decide(
                delivery_pb2.DeliveryRequest(), options, None, record_telemetry=False
            )
        except Exception as exc:
            log.warning("Unable to retrieve location hint cookie. %s", exc)
            return None
        return self._location.value if envelope.response.edge_host else None
