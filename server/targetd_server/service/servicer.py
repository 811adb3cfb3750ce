"""``targetd.v1.DecisioningService``: maps each RPC onto the :class:`TargetClient`.

Only proto ↔ domain mapping happens here; error → status mapping is :func:`maps_errors`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc
from targetd_server.errors import UnimplementedError
from targetd_server.service.status import maps_errors
from targetd_server.target_client import TargetClient

Context = grpc.aio.ServicerContext[Any, Any]


class DecisioningServicer(pb_grpc.DecisioningServiceServicer):
    """The gRPC face of one :class:`TargetClient`."""

    def __init__(self, client: TargetClient) -> None:
        self._client = client

    @maps_errors
    async def GetOffers(self, request: pb.GetOffersRequest, context: Context) -> pb.GetOffersResponse:
        envelope = await self._client.get_offers(request, time_remaining=context.time_remaining())
        return pb.GetOffersResponse(envelope=envelope)

    @maps_errors
    async def GetAttributes(
        self, request: pb.GetAttributesRequest, context: Context
    ) -> pb.GetAttributesResponse:
        return await self._client.get_attributes(request, time_remaining=context.time_remaining())

    @maps_errors
    async def SendNotifications(
        self, request: pb.SendNotificationsRequest, context: Context
    ) -> pb.SendNotificationsResponse:
        envelope = await self._client.send_notifications(request, time_remaining=context.time_remaining())
        return pb.SendNotificationsResponse(envelope=envelope)

    @maps_errors
    async def GetStatus(self, request: pb.GetStatusRequest, context: Context) -> pb.GetStatusResponse:
        return self._client.status()

    async def SubscribeEvents(
        self, request: pb.SubscribeEventsRequest, context: Context
    ) -> AsyncIterator[pb.SubscribeEventsResponse]:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            str(UnimplementedError("SubscribeEvents is not implemented yet: it lands with the event bus")),
        )
        yield pb.SubscribeEventsResponse()  # pragma: no cover - unreachable, makes this a generator
