"""Server-side decisioning and everything else targetd sends to Adobe Target, behind one object.

:class:`ServerSide` owns the pooled Delivery API client, the geo lookup, the durable outbox and the
location hint. The Target client calls:

* :meth:`ServerSide.decide` — a GetOffers/GetAttributes request through the Delivery API, returning the
  SDK envelope (``meta.decisioning_method`` = server-side);
* :meth:`ServerSide.send_notifications` — SendNotifications (always server-side);
* :meth:`ServerSide.enqueue` — on-device notifications/telemetry into the outbox (sync, fast);
* :meth:`ServerSide.lookup_geo` — the IP geo lookup for on-device requests;
* :meth:`ServerSide.request_location_hint` — the SDK's start-up ping when no hint is configured.

Loop affinity: construct, call and close on the server's event loop; HTTP runs in worker threads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from targetd_server.config import Settings
from targetd_server.decisions.local import prepare_identity
from targetd_server.delivery.build import build_delivery_request, validate_notifications
from targetd_server.delivery.geo import GeoLookup
from targetd_server.delivery.http import DeliveryApi
from targetd_server.delivery.outbox import Outbox
from targetd_server.delivery.outbox_files import claim_outbox_path
from targetd_server.engine import TelemetryProvider, delivery_request_entry
from targetd_server.engine.request import new_id
from targetd_server.envelope import (
    build_envelope,
    call_cookie_and_session,
    cluster_from_device_id,
    cluster_from_edge_host,
    create_location_hint_cookie,
    create_target_cookie,
    parse_target_cookie,
)
from targetd_server.errors import InvalidRequestError

log = logging.getLogger("targetd.delivery")

__all__ = ["LOCATION_HINT_SESSION_ID", "ServerSide"]

LOCATION_HINT_SESSION_ID = "ping123"  # the SDKs' session id for the location-hint request


class ServerSide:
    """See the module docstring. ``publish_geo(geo)`` publishes ``geo_location_updated``; ``telemetry`` is
    the client's store (Node's TelemetryProvider): every Delivery API call carries the stored entries, and
    each server-side decision adds its own (mode ``edge``)."""

    def __init__(
        self,
        settings: Settings,
        publish_geo: Callable[[delivery_pb2.Geo], object],
        telemetry: TelemetryProvider,
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.api = DeliveryApi(settings)
        self.geo = GeoLookup(settings, publish_geo)
        self.location_hint: str | None = settings.target_location_hint
        """The configured hint, replaced by the cluster of each Delivery API answer (the SDKs'
        ``preserve_location_hint``)."""
        outbox_path, lock_fd = claim_outbox_path(settings.data_path)
        self.outbox = Outbox(
            outbox_path,
            self._send_outbound,
            lock_fd=lock_fd,
            max_rows=settings.outbox_max_rows,
            batch_size=settings.outbox_batch_size,
            concurrency=settings.outbox_concurrency,
            max_backoff=settings.outbox_max_backoff,
            send_timeout=settings.timeout / 1000,
        )
        self._tasks: set[asyncio.Task[str | None]] = set()

    # ------------------------------------------------------------------------------------ lifecycle

    def start(self, *, ping_location_hint: bool) -> None:
        """Start the outbox sender; with ``ping_location_hint`` and no hint configured, request one in the
        background (failures are logged, never fatal)."""
        self.outbox.start()
        if ping_location_hint and not self.location_hint:
            task = asyncio.get_running_loop().create_task(self.request_location_hint())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Flush the outbox (``outbox_flush_timeout``), then release pools; safe to call more than once."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.to_thread(self.outbox.close, self.settings.outbox_flush_timeout)
        self.api.close()
        self.geo.close()

    async def request_location_hint(self) -> str | None:
        """POST an empty request (session ``ping123``) and keep the edge cluster of the answer."""
        request = delivery_pb2.DeliveryRequest()
        build_delivery_request(
            request, environment_id=self.settings.environment_id, property_token=self.settings.property_token
        )
        try:
            response = await self.api.execute(request, session_id=LOCATION_HINT_SESSION_ID, cluster=None)
        except Exception as exc:
            log.warning("Unable to retrieve location hint cookie. %s", exc)
            return None
        cluster = cluster_from_edge_host(response.edge_host or None)
        if cluster and not self.location_hint:
            self.location_hint = cluster
            log.info("location hint from the Delivery API: cluster %s", cluster)
        return cluster

    # ------------------------------------------------------------------------------------ decisions

    async def decide(
        self,
        request: delivery_pb2.DeliveryRequest,
        *,
        target_cookie: str | None,
        session_id: str | None,
        location_hint: str | None,
        customer_ids: Iterable[delivery_pb2.CustomerId] = (),
        time_remaining: float | None = None,
        remote_mboxes: Iterable[str] = (),
        remote_views: Iterable[str] = (),
        telemetry: bool = True,
    ) -> pb.TargetDeliveryResponse:
        """Decide ``request`` (owned by this call; completed in place) with the Delivery API; with
        ``telemetry``, record this call's telemetry entry in the store.

        ``location_hint`` is the call's hint (else the client's). Raises the upstream errors of
        :class:`DeliveryApi`.
        """
        started = time.perf_counter()
        identity = prepare_identity(
            request,
            target_cookie=target_cookie,
            session_id=session_id,
            location_hint=location_hint or self.location_hint,
            settings=self.settings,
        )
        build_delivery_request(
            request,
            environment_id=self.settings.environment_id,
            property_token=self.settings.property_token,
            customer_ids=customer_ids,
        )
        stored = self.telemetry.drain()  # Node: the store leaves with the next call...
        if stored:
            request.telemetry.entries.extend(stored)
        try:
            response = await self.api.execute(
                request,
                session_id=identity.session_id,
                cluster=identity.cluster,
                time_remaining=time_remaining,
            )
        except BaseException:
            for entry in stored:  # ... and, unlike Node, comes back when that call fails
                self.telemetry.add_entry(entry)
            raise
        self._preserve_location_hint(identity.cluster, response)
        decided = request.HasField("execute") or request.HasField("prefetch")
        if telemetry and decided:
            self.telemetry.add_entry(
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
            decisioning_method=delivery_pb2.DECISIONING_METHOD_SERVER_SIDE,
            target_cookie=create_target_cookie(identity.session_id, response.id.tnt_id or None),
            target_location_hint_cookie=create_location_hint_cookie(
                identity.cluster, response.edge_host or None
            ),
            remote_mboxes=remote_mboxes,
            remote_views=remote_views,
        )

    async def send_notifications(
        self, call: pb.SendNotificationsRequest, *, time_remaining: float | None = None
    ) -> pb.TargetDeliveryResponse:
        """The SDK's send_notifications: invalid notifications are dropped (logged); fails with
        INVALID_ARGUMENT only when neither a valid notification nor telemetry is left."""
        if not call.HasField("request"):
            raise InvalidRequestError("Request object is required", field="request")
        request = delivery_pb2.DeliveryRequest()
        request.CopyFrom(call.request)
        validate_notifications(request)
        if not request.notifications and not request.telemetry.entries and not self.telemetry.has_entries():
            raise InvalidRequestError(
                "Notifications array is required in request (every notification needs an id, a timestamp "
                "and a click or display type)",
                field="request.notifications",
            )
        cookie, session = call_cookie_and_session(call)
        return await self.decide(
            request,
            target_cookie=cookie,
            session_id=session,
            location_hint=call.target_location_hint or None,
            customer_ids=call.customer_ids,
            time_remaining=time_remaining,
            telemetry=False,
        )

    # ------------------------------------------------------------------------------------ on-device help

    def enqueue(self, outbound: delivery_pb2.DeliveryRequest, envelope: pb.TargetDeliveryResponse) -> bool:
        """Store the notifications/telemetry of an on-device decision in the outbox (before the RPC
        returns); sent with the visitor's session (from the envelope's cookie) and edge cluster."""
        cookie = envelope.target_cookie.value if envelope.HasField("target_cookie") else None
        session = parse_target_cookie(cookie).session_id if cookie else None
        cluster = cluster_from_device_id(outbound.id.tnt_id) or self.location_hint
        if not outbound.request_id:
            outbound.request_id = new_id()  # fixed now, so that a re-send is recognisable
        return self.outbox.enqueue(outbound, session_id=session, cluster=cluster)

    async def lookup_geo(
        self, request: delivery_pb2.DeliveryRequest, time_remaining: float | None
    ) -> delivery_pb2.Geo | None:
        """Look up the geo of ``request.context.geo.ipAddress`` (call only when the engine's
        ``needs_geo_lookup`` says so); None when the lookup failed."""
        return await self.geo.lookup(request.context.geo.ip_address, time_remaining=time_remaining)

    # ------------------------------------------------------------------------------------ internals

    def _preserve_location_hint(self, cluster: str | None, response: delivery_pb2.DeliveryResponse) -> None:
        found = cluster_from_edge_host(response.edge_host or None) or cluster
        if found and found != self.location_hint:
            self.location_hint = found

    def _send_outbound(
        self, request: delivery_pb2.DeliveryRequest, session_id: str, cluster: str | None, timeout: float
    ) -> None:
        """The outbox's sender (worker thread): one POST; raises the upstream errors."""
        self.api.send(request, session_id=session_id, cluster=cluster, timeout=timeout)
