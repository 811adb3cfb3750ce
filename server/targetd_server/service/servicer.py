"""``targetd.v1.DecisioningService``: maps each RPC onto the :class:`TargetClient`.

Only proto ↔ domain mapping happens here; error → status mapping is :func:`maps_errors`.

The unary methods return their reply **encoded** (``bytes``; ``service/handlers.py`` registers them with a
pass-through serializer): the size limit is checked on the encoding that is sent, so a reply is encoded
once instead of twice (upb's ``ByteSize`` costs what ``SerializeToString`` does: ~5 µs for one mbox,
~40 µs for a 27-decision prefetch), and the replies that hold only ``envelope = 1`` are that field's
framing in front of the envelope's own encoding — what protobuf writes for them — with no copy of the
envelope into a reply message (~4 / ~50 µs).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Final, NoReturn, Protocol

import grpc

from targetd.v1 import decisioning_service_pb2 as pb
from targetd_server.calls import TargetClient
from targetd_server.errors import OverloadedError, TargetdError
from targetd_server.service.status import maps_errors, status_for

__all__ = ["DecisioningServicer", "envelope_reply"]


class Context(Protocol):
    """What the servicer uses of ``grpc.aio.ServicerContext``, typed as grpc.aio behaves:
    ``time_remaining()`` is None when the call has no deadline, though grpc's stubs say ``float``. This
    module is compiled (tools/compile.py) and compiled code checks values against their declared types,
    so the stubs' type would turn a deadline-less call into a TypeError."""

    def time_remaining(self) -> float | None: ...

    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn: ...

    async def write(self, message: Any) -> None: ...

    def set_trailing_metadata(self, trailing_metadata: Any) -> None: ...


# The tag of field 1 with wire type 2 (length-delimited): ``envelope`` in GetOffersResponse and
# SendNotificationsResponse (tests/service/test_servicer_encoding.py checks the bytes against protobuf's own).
_ENVELOPE_TAG: Final = bytes([1 << 3 | 2])


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def envelope_reply(envelope: pb.TargetDeliveryResponse) -> bytes:
    """The encoding of ``GetOffersResponse(envelope=envelope)`` (and of ``SendNotificationsResponse``,
    the same shape): field 1's tag, the envelope's length, the envelope's bytes."""
    data = envelope.SerializeToString()
    return b"".join((_ENVELOPE_TAG, _varint(len(data)), data))


class DecisioningServicer:
    """The gRPC face of one :class:`TargetClient`: one coroutine method per RPC of
    ``targetd.v1.DecisioningService``, registered by ``service/handlers.py:add_servicer``."""

    def __init__(self, client: TargetClient, *, max_response_bytes: int = 4 * 1024 * 1024) -> None:
        self._client = client
        self._max_response_bytes = max_response_bytes

    def _sized(self, data: bytes) -> bytes:
        """``data`` (an encoded reply) when it fits ``max_message_bytes``; else :class:`OverloadedError`
        (RESOURCE_EXHAUSTED) naming the limit."""
        if len(data) > self._max_response_bytes:
            raise OverloadedError(
                f"the response would be {len(data)} bytes, over the limit of {self._max_response_bytes} "
                "(max_message_bytes); request fewer mboxes or views, or no trace"
            )
        return data

    @maps_errors
    async def GetOffers(self, request: pb.GetOffersRequest, context: Context) -> bytes:
        envelope = await self._client.get_offers(request, time_remaining=context.time_remaining())
        return self._sized(envelope_reply(envelope))

    @maps_errors
    async def GetAttributes(self, request: pb.GetAttributesRequest, context: Context) -> bytes:
        reply = await self._client.get_attributes(request, time_remaining=context.time_remaining())
        return self._sized(reply.SerializeToString())

    @maps_errors
    async def SendNotifications(self, request: pb.SendNotificationsRequest, context: Context) -> bytes:
        envelope = await self._client.send_notifications(request, time_remaining=context.time_remaining())
        return self._sized(envelope_reply(envelope))

    @maps_errors
    async def GetStatus(self, request: pb.GetStatusRequest, context: Context) -> bytes:
        return self._client.status().SerializeToString()

    async def SubscribeEvents(self, request: pb.SubscribeEventsRequest, context: Context) -> None:
        """Stream the client's events (see ``targetd_server.events``). Written with ``context.write`` in
        this handler's own task, so that a subscriber cut off while a write is stuck on a client that
        stopped reading can be woken (the task is cancelled) and ended with RESOURCE_EXHAUSTED."""
        try:
            subscription = self._client.events.subscribe(request.types, request.include_artifact_payload)
        except TargetdError as error:
            await context.abort(status_for(error), str(error))
        task = asyncio.current_task()
        if task is not None:
            subscription.on_cutoff = functools.partial(task.cancel, "subscriber cut off")
        failure: TargetdError | None = None
        try:
            async for response in subscription:
                await context.write(response)
            if subscription.expired:
                context.set_trailing_metadata((("targetd-stream-end", "max-stream-age"),))
        except asyncio.CancelledError:
            if subscription.error is None:
                raise
            failure = subscription.error
            if task is not None:
                task.uncancel()
        except TargetdError as error:
            failure = error
        finally:
            subscription.close()
        if failure is not None:
            await context.abort(status_for(failure), str(failure))
