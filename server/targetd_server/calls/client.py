"""The in-process Target client: the service's equivalent of the SDKs' ``TargetClient``.

It owns readiness and the parts of one client (event bus, artifact provider, telemetry store, location
hint, and the transport: Delivery API client, geo lookup, outbox), reads each call's options once
(:class:`CallOptions`), validates the request once, and hands it to the path that serves it
(``hybrid.route`` → ``on_device`` / ``server_side``; ``notifications``). The gRPC layer
(``targetd_server.service``) calls it; it knows nothing of gRPC.

Loop affinity: create, start, stop and call it on the server's asyncio event loop. Readiness listeners are
called on that loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final

from targetd.v1 import decisioning_service_pb2 as service_pb2
from targetd.v1 import delivery_pb2
from targetd_server import __version__
from targetd_server.artifacts import ArtifactProvider, ArtifactSnapshot
from targetd_server.calls.envelope import add_mboxes_to_request, fill_attributes
from targetd_server.calls.hybrid import route
from targetd_server.calls.limits import RequestLimits, check_call
from targetd_server.calls.location import LocationHint
from targetd_server.calls.notifications import send_notifications
from targetd_server.calls.on_device import OnDevice
from targetd_server.calls.options import CallOptions
from targetd_server.calls.request import validate_request
from targetd_server.calls.server_side import ServerSide
from targetd_server.config import Settings
from targetd_server.delivery import DeliveryApi, GeoLookup, Outbox, SenderSupervisor, claim_outbox_path
from targetd_server.engine import TelemetryProvider
from targetd_server.errors import InvalidRequestError
from targetd_server.events import EventBus

log = logging.getLogger("targetd.client")

OUTBOX_REFRESH: Final = 1.0
"""Seconds between two reads of the outbox file's stats (GetStatus ``outbox``, the gauges)."""

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
        self.limits = RequestLimits.of(settings)
        self._ready = False
        self._ready_event = asyncio.Event()
        self._readiness_listeners: list[Callable[[bool], None]] = []
        # Node's TelemetryProvider: entries wait here until the next request to Target carries them.
        self.telemetry = TelemetryProvider(settings.telemetry_enabled)
        # The event bus (SubscribeEvents) and the artifact provider (`artifacts.snapshot` is the artifact
        # applied now, or None); see targetd_server.events and targetd_server.artifacts.
        self.events = EventBus(
            queue_size=settings.subscriber_queue_size,
            max_payload_bytes=max(0, settings.max_message_bytes - 16 * 1024),  # room for the other fields
            heartbeat_interval=settings.heartbeat_interval,
            max_stream_age=settings.max_stream_age,
            state=self._event_state,
        )
        self.artifacts = ArtifactProvider(
            settings, self.events, on_applied=self._artifact_applied, telemetry=self.telemetry
        )
        # The transport (targetd_server.delivery) and the paths that use it.
        self.location = LocationHint(settings.target_location_hint)
        self.api = DeliveryApi(settings)
        self.geo = GeoLookup(settings, self.events.publish_geo_location_updated)
        outbox_path, lock_fd = claim_outbox_path(settings.data_path)
        self.outbox = Outbox(
            outbox_path,
            lock_fd=lock_fd,
            max_rows=settings.outbox_max_rows,
            commit_window=settings.outbox_commit_window / 1000,
            commit_rows=settings.outbox_commit_rows,
        )
        # The sender process that delivers the outbox's rows (delivery/sender.py), supervised from here.
        self.sender = SenderSupervisor(settings, outbox_path)
        self.server_side = ServerSide(settings, self.api, self.location, self.telemetry)
        self.on_device = OnDevice(
            settings,
            artifacts=self.artifacts,
            ready=self._ready_event,
            geo=self.geo,
            outbox=self.outbox,
            location=self.location,
            telemetry=self.telemetry,
        )
        self._tasks: set[asyncio.Task[object]] = set()

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
        self.sender.start()
        self._spawn(self._watch_outbox())
        # Node pings Target for the edge cluster when none is configured; targetd does not when the rules
        # are a payload or a local file (offline use, maybe no Target account): the cluster is then learnt
        # from the first Delivery API answer instead.
        on_device = self.method != delivery_pb2.DECISIONING_METHOD_SERVER_SIDE
        if on_device and not self.location.value and not self.artifacts.offline:
            self._spawn(self.server_side.ping_location_hint())
        if self.method == delivery_pb2.DECISIONING_METHOD_SERVER_SIDE:
            self._set_ready(True)
            self.events.publish_client_ready()
        else:
            await self.artifacts.start()

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch_outbox(self) -> None:
        """Every OUTBOX_REFRESH seconds: the outbox's file stats and gauges (GetStatus reads them)."""
        while True:
            self._sync_sender()
            await self.outbox.refresh()
            await asyncio.sleep(OUTBOX_REFRESH)

    def _sync_sender(self) -> None:
        state, sender = self.outbox.state, self.sender
        state.sender_state = sender.state
        state.sender_restarts = sender.restarts
        state.sender_pid = sender.pid
        state.sender_error = "" if sender.state in ("running", "flushing") else sender.last_error
        state.delivered = sender.delivered_rows

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
        """Stop background work once no call is in flight: artifact polling, then the transport (the
        outbox flushes what Target accepts for ``outbox_flush_timeout``; the rest stays on disk). Safe to
        call more than once."""
        await self.begin_shutdown()
        await self.artifacts.stop()
        for task in list(self._tasks):
            task.cancel()
        self.outbox.flush()
        await self.sender.stop()  # it delivers for outbox_flush_timeout; the rest stays on disk
        self._sync_sender()
        self.outbox.close()
        await self.api.aclose()
        await self.geo.aclose()

    # ------------------------------------------------------------------------------------ operations

    async def get_offers(
        self, call: service_pb2.GetOffersRequest, *, time_remaining: float | None = None
    ) -> service_pb2.TargetDeliveryResponse:
        """The SDK's get_offers. ``time_remaining`` is the caller's remaining deadline in seconds. Raises
        the domain errors of :mod:`targetd_server.errors`."""
        check_call(call, self.limits)
        request = validate_request(call.request if call.HasField("request") else None)
        return await self._decide(request, CallOptions.of(call), time_remaining)

    async def get_attributes(
        self, call: service_pb2.GetAttributesRequest, *, time_remaining: float | None = None
    ) -> service_pb2.GetAttributesResponse:
        """The SDK's get_attributes: the mboxes are added to ``execute`` unless already requested, and the
        JSON offers of the response are flattened per mbox."""
        check_call(call, self.limits)
        for position, name in enumerate(call.mbox_names):
            if not name:
                raise InvalidRequestError("an mbox name is required", field=f"mbox_names[{position}]")
        try:
            request = add_mboxes_to_request(
                call.mbox_names, call.request if call.HasField("request") else None
            )
        except ValueError:  # the next index past an int32 (protobuf: "Value out of range")
            raise InvalidRequestError(
                "the mboxes added for mbox_names would need an index past 2147483647; lower the indexes",
                field="request.execute.mboxes.index",
            ) from None
        envelope = await self._decide(validate_request(request), CallOptions.of(call), time_remaining)
        reply = service_pb2.GetAttributesResponse()
        reply.envelope.CopyFrom(envelope)
        fill_attributes(reply.attributes, envelope.response)
        return reply

    async def _decide(
        self, request: delivery_pb2.DeliveryRequest, options: CallOptions, time_remaining: float | None
    ) -> service_pb2.TargetDeliveryResponse:
        method = options.decisioning_method or self.method
        return await route(
            request,
            options,
            method=method,
            snapshot=self.artifacts.snapshot,
            on_device=self.on_device,
            server_side=self.server_side,
            time_remaining=time_remaining,
        )

    async def send_notifications(
        self, call: service_pb2.SendNotificationsRequest, *, time_remaining: float | None = None
    ) -> service_pb2.TargetDeliveryResponse:
        """The SDK's send_notifications (always server-side): invalid notifications are dropped and
        logged; INVALID_ARGUMENT only when none is left."""
        check_call(call, self.limits)
        return await send_notifications(call, self.server_side, self.telemetry, time_remaining)

    def status(self) -> service_pb2.GetStatusResponse:
        """A snapshot of readiness, configuration, the artifact, the event stream and the notification
        pipeline (``outbox``: as read at most OUTBOX_REFRESH seconds ago)."""
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
        self._sync_sender()
        self.outbox.fill_status(status.outbox)
        return status
