"""The grpc-ecosystem metrics of every call (``targetd_server.metrics``: started, handled by code, handling
seconds, messages received and sent), recorded by the method handlers themselves: each handler is wrapped
once, when it is registered, through :class:`MeteredRegistration` — not by a server interceptor, which
grpc.aio runs as a coroutine chain on every call (measured: ~150 µs of server CPU per call at c=1 for the
same counting; see bench/README.md).

Counted: unary and streaming calls of every service registered through :class:`MeteredRegistration`
(targetd's, health, reflection) and the calls the token check rejects (``TokenAuthInterceptor`` wraps
its rejecting handler with :func:`instrument`). Not counted: calls of unknown methods (no handler:
UNIMPLEMENTED), as in go-grpc-prometheus.

Loop affinity: the handlers run on the server's event loop. A handler must be a coroutine function or an
async generator function (grpc.aio).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Final

import grpc

from targetd_server import metrics

__all__ = ["GO_CODE_NAMES", "MeteredRegistration", "instrument"]


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


def _wrap(handler: grpc.RpcMethodHandler[Any, Any], full_method: str) -> grpc.RpcMethodHandler[Any, Any]:
    service, _, method = full_method.lstrip("/").rpartition("/")
    streaming_in, streaming_out = handler.request_streaming, handler.response_streaming
    rpc = metrics.rpc_metrics(_TYPES[(streaming_in, streaming_out)], service, method)
    behavior: Any
    if not streaming_in and not streaming_out:
        # Unary calls (GetOffers, GetAttributes: the hot path) apart: no context proxy, no argument
        # shuffling; the streaming wrappers below count the messages they read and write.
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


_CACHE: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}


def instrument(
    handler: grpc.RpcMethodHandler[Any, Any], method: str, *, cache: bool = True
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` of the full ``method`` name (``/package.Service/Method``) recording the call's metrics;
    the same wrapper while the handler is the same object (at most 256 methods kept; past that, each call
    is wrapped anew). ``cache=False``: a handler made for one call (wrapped, not kept)."""
    if not cache:
        return _wrap(handler, method)
    cached = _CACHE.get(method)
    if cached is not None and cached[0] is handler:
        return cached[1]
    instrumented = _wrap(handler, method)
    if cached is not None or len(_CACHE) < _MAX_CACHED:
        _CACHE[method] = (handler, instrumented)
    return instrumented


class _MeteredGeneric(grpc.GenericRpcHandler):
    """A generic handler whose method handlers are instrumented (once per method)."""

    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self._inner = inner

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        return instrument(handler, handler_call_details.method)


class MeteredRegistration(grpc.aio.Server):
    """The registration side of a ``grpc.aio.Server``: what is registered through it (the generated
    ``add_*_to_server`` functions, health, reflection) reaches ``server`` with every method handler
    instrumented. Only registration is proxied; start, bind and stop the real server."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers([_MeteredGeneric(h) for h in generic_rpc_handlers])

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        self._server.add_registered_method_handlers(
            service_name,
            {name: instrument(h, f"/{service_name}/{name}") for name, h in method_handlers.items()},
        )

    def add_insecure_port(self, address: str) -> int:
        raise TypeError("MeteredRegistration registers handlers only: bind the server itself")

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        raise TypeError("MeteredRegistration registers handlers only: bind the server itself")

    async def start(self) -> None:
        raise TypeError("MeteredRegistration registers handlers only: start the server itself")

    async def stop(self, grace: float | None) -> None:
        raise TypeError("MeteredRegistration registers handlers only: stop the server itself")

    async def wait_for_termination(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 (the ABC's)
        raise TypeError("MeteredRegistration registers handlers only")
