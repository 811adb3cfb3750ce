"""Server interceptors: the grpc-ecosystem metrics of every call (:class:`MetricsInterceptor`, first) and
bearer-token authentication (:class:`TokenAuthInterceptor`).

Health checks and reflection are exempt from the token, so that orchestrator probes and tooling work
without it.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import grpc

from targetd_server import metrics

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
        if handler is not None and handler.response_streaming:

            async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
                yield  # pragma: no cover

            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

        return grpc.unary_unary_rpc_method_handler(
            unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


# ------------------------------------------------------------------------------------------- metrics

_TYPES: Final = {
    (False, False): "unary",
    (True, False): "client_stream",
    (False, True): "server_stream",
    (True, True): "bidi_stream",
}
# Go's names of the status codes, as grpc-ecosystem's dashboards expect them (InvalidArgument, Canceled, ...).
GO_CODE_NAMES: Final = {
    code: "OK" if code is grpc.StatusCode.OK else "".join(part.capitalize() for part in code.name.split("_"))
    for code in grpc.StatusCode
} | {grpc.StatusCode.CANCELLED: "Canceled"}
_MAX_CACHED: Final = 256


def _code(context: Any, default: str) -> str:
    code = context.code()
    return GO_CODE_NAMES.get(code, default) if code is not None else default


class _Counted:
    """A servicer context that counts the messages a handler writes and reads with ``context.write`` /
    ``context.read`` (every other attribute is the real context's)."""

    __slots__ = ("_context", "_metrics")

    def __init__(self, context: Any, rpc: metrics.RpcMetrics) -> None:
        self._context = context
        self._metrics = rpc

    async def write(self, message: Any) -> None:
        await self._context.write(message)
        self._metrics.sent.inc()

    async def read(self) -> Any:
        message = await self._context.read()
        if message is not grpc.aio.EOF:
            self._metrics.received.inc()
        return message

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


async def _counted_requests(requests: AsyncIterator[Any], rpc: metrics.RpcMetrics) -> AsyncIterator[Any]:
    async for request in requests:
        rpc.received.inc()
        yield request


class _Call:
    """The bookkeeping of one call: started now; :meth:`finish` records its code and duration once."""

    __slots__ = ("rpc", "started")

    def __init__(self, rpc: metrics.RpcMetrics) -> None:
        rpc.started.inc()
        self.rpc = rpc
        self.started = time.perf_counter()

    def finish(self, code: str) -> None:
        self.rpc.seconds.observe(time.perf_counter() - self.started)
        self.rpc.handled(code).inc()


def _instrument(
    handler: grpc.RpcMethodHandler[Any, Any], full_method: str
) -> grpc.RpcMethodHandler[Any, Any]:
    service, _, method = full_method.lstrip("/").rpartition("/")
    streaming_in, streaming_out = handler.request_streaming, handler.response_streaming
    rpc = metrics.rpc_metrics(_TYPES[(streaming_in, streaming_out)], service, method)
    behavior: Any
    if not streaming_in and not streaming_out:
        unary_inner: Any = handler.unary_unary

        async def unary(request: Any, context: Any) -> Any:
            call = _Call(rpc)
            rpc.received.inc()
            code = "Unknown"
            try:
                reply = await unary_inner(request, context)
                code = _code(context, "OK")
                rpc.sent.inc()
                return reply
            except grpc.aio.AbortError:
                code = _code(context, "Unknown")
                raise
            except asyncio.CancelledError:
                code = "Canceled"
                raise
            finally:
                call.finish(code)

        return grpc.unary_unary_rpc_method_handler(
            unary, handler.request_deserializer, handler.response_serializer
        )
    inner = getattr(handler, _BEHAVIORS[(streaming_in, streaming_out)])

    def arguments(first: Any, context: Any) -> tuple[Any, Any]:
        if streaming_in:
            return _counted_requests(first, rpc), context
        rpc.received.inc()
        return first, context

    if inspect.isasyncgenfunction(inner):

        async def generator(first: Any, context: Any) -> AsyncIterator[Any]:
            call = _Call(rpc)
            code = "Unknown"
            try:
                async for reply in inner(*arguments(first, _Counted(context, rpc))):
                    rpc.sent.inc()
                    yield reply
                code = _code(context, "OK")
            except grpc.aio.AbortError:
                code = _code(context, "Unknown")
                raise
            except (asyncio.CancelledError, GeneratorExit):
                code = "Canceled"
                raise
            finally:
                call.finish(code)

        behavior = generator
    else:

        async def writer(first: Any, context: Any) -> Any:
            call = _Call(rpc)
            code = "Unknown"
            try:
                result = await inner(*arguments(first, _Counted(context, rpc)))
                code = _code(context, "OK")
                if not streaming_out:
                    rpc.sent.inc()
                return result
            except grpc.aio.AbortError:
                code = _code(context, "Unknown")
                raise
            except asyncio.CancelledError:
                code = "Canceled"
                raise
            finally:
                call.finish(code)

        behavior = writer
    factory = _FACTORIES[(streaming_in, streaming_out)]
    return factory(behavior, handler.request_deserializer, handler.response_serializer)  # type: ignore[no-any-return]


_BEHAVIORS: Final = {
    (True, False): "stream_unary",
    (False, True): "unary_stream",
    (True, True): "stream_stream",
}
_FACTORIES: Final[dict[tuple[bool, bool], Callable[..., Any]]] = {
    (True, False): grpc.stream_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Records the grpc-ecosystem metrics (``targetd_server.metrics``: started, handled by code, handling
    seconds, messages received and sent) of every call that reaches a handler: unary and streaming, health
    and reflection, and calls the token check rejects — so it must be the first interceptor. Calls of
    unknown methods (no handler: UNIMPLEMENTED) are not counted, as in go-grpc-prometheus.

    The instrumented handler of each method is made once and reused while the inner handler is the same
    object (at most 256 methods cached; past that, calls are instrumented one by one). Loop affinity: the
    server's event loop. A handler must be a coroutine function or an async generator function (grpc.aio).
    """

    def __init__(self) -> None:
        self._cache: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        cached = self._cache.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        instrumented = _instrument(handler, method)
        if cached is not None or len(self._cache) < _MAX_CACHED:
            self._cache[method] = (handler, instrumented)
        return instrumented
