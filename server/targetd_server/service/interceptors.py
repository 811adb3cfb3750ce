"""The server interceptor of bearer-token authentication (:class:`TokenAuthInterceptor`; the metrics of
every call are recorded by the handlers themselves: :mod:`.rpc_metrics`).

Health checks and reflection are exempt from the token, so that orchestrator probes and tooling work
without it.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any, Final

import grpc

from targetd_server.service.rpc_metrics import instrument

_EXEMPT_PREFIXES: Final = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    """Requires ``authorization: Bearer <token>`` metadata on every call but health and reflection."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        if method.startswith(_EXEMPT_PREFIXES):
            return await continuation(handler_call_details)
        supplied = b""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                supplied = value.encode() if isinstance(value, str) else value
                break
        if hmac.compare_digest(supplied, self._expected):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        if handler is None:  # an unknown method: UNIMPLEMENTED, as for any caller
            return None
        message = "missing or wrong bearer token: send metadata 'authorization: Bearer <token>'"
        behaviour: Any
        factory: Any
        if handler.response_streaming:

            async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
                yield  # pragma: no cover

            behaviour, factory = stream, grpc.unary_stream_rpc_method_handler
        else:

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

            behaviour, factory = unary, grpc.unary_unary_rpc_method_handler
        rejecting = factory(
            behaviour,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        return instrument(rejecting, method, cache=False)  # counted as the call it refuses
