"""The method handlers of ``targetd.v1.DecisioningService``, registered in place of the generated
``add_DecisioningServiceServicer_to_server`` for one reason: request bytes that do not decode.

gRPC calls a handler's ``request_deserializer`` before any servicer code runs; the generated one
(``Message.FromString``) raises ``DecodeError``, which grpc.aio reports as UNKNOWN with an error-level
traceback per call. Here the deserializer returns an :class:`Undecodable` marker instead, and the handler
answers INVALID_ARGUMENT with a short message (no traceback; the log line is rate-limited) before the
servicer is called. Decodable requests cost one ``try`` and one ``type(...) is`` check more than the
generated handlers: GetOffers on-device over loopback, 6,000 calls each, median 1.87 ms with these handlers
against 2.00 ms with the generated ones on a loaded 2-core machine — within noise.

Loop affinity: handlers run on the server's event loop (grpc.aio); deserializers on gRPC's threads or the
loop, and are pure.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import grpc
from google.protobuf.message import DecodeError, Message

from targetd.v1 import decisioning_service_pb2 as pb
from targetd_server.logs import Throttled
from targetd_server.service.servicer import DecisioningServicer

__all__ = ["SERVICE_NAME", "Undecodable", "add_servicer"]

SERVICE_NAME: Final = pb.DESCRIPTOR.services_by_name["DecisioningService"].full_name

log = logging.getLogger("targetd.service")
_invalid_input_log = Throttled(log)


class Undecodable:
    """The request of a call whose bytes are not a valid message of its type."""

    __slots__ = ("message_type",)

    def __init__(self, message_type: str) -> None:
        self.message_type = message_type


def _deserializer(cls: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    parse = cls.FromString
    name = cls.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> Message | Undecodable:
        try:
            return parse(data)
        except (DecodeError, RuntimeError, ValueError):  # (RuntimeError: upb's recursion limit)
            return Undecodable(name)

    return deserialize


async def _refuse(request: Undecodable, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    _invalid_input_log.warning("undecodable_request", f"undecodable {request.message_type} refused")
    # Not a domain error: nothing was decoded to validate, so the service layer answers here.
    await context.abort(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"request: the bytes are not a valid {request.message_type} (protobuf encoding)",
    )


def _unary(method: Callable[[Any, Any], Awaitable[Any]]) -> Callable[[Any, Any], Awaitable[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if type(request) is Undecodable:
            await _refuse(request, context)
        return await method(request, context)

    return handle


def _stream(method: Callable[[Any, Any], Awaitable[None]]) -> Callable[[Any, Any], Awaitable[None]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if type(request) is Undecodable:
            await _refuse(request, context)
        await method(request, context)

    return handle


def _encoded(reply: bytes) -> bytes:
    return reply


def add_servicer(servicer: DecisioningServicer, server: grpc.aio.Server) -> None:
    """Register ``servicer``'s five RPCs on ``server`` (as the generated function does, plus the
    undecodable-request handling of the module docstring). The unary methods return encoded replies
    (``bytes``), sent as they are; the streaming one writes messages."""
    service = pb.DESCRIPTOR.services_by_name["DecisioningService"]
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        request_cls: type[Message] = getattr(pb, method.input_type.name)
        response_cls: type[Message] = getattr(pb, method.output_type.name)
        behaviour = getattr(servicer, method.name)
        deserializer = _deserializer(request_cls)
        if method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _stream(behaviour),
                request_deserializer=deserializer,
                response_serializer=response_cls.SerializeToString,
            )
        else:
            # the servicer's unary methods return their reply already encoded (servicer.py)
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary(behaviour), request_deserializer=deserializer, response_serializer=_encoded
            )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
