"""The one place where domain errors become gRPC status codes.

Servicer methods are wrapped with :func:`maps_errors`; nothing else in the server chooses a status code.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import grpc

from targetd_server.errors import (
    ConfigError,
    InvalidRequestError,
    NotReadyError,
    OverloadedError,
    TargetdError,
    UnimplementedError,
    UpstreamError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
)
from targetd_server.ids import new_id

log = logging.getLogger("targetd.service")

# Most specific first: the first isinstance match wins.
_CODES: Final[tuple[tuple[type[TargetdError], grpc.StatusCode], ...]] = (
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotReadyError, grpc.StatusCode.UNAVAILABLE),
    (UnimplementedError, grpc.StatusCode.UNIMPLEMENTED),
    (UpstreamTimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (UpstreamRejectedError, grpc.StatusCode.FAILED_PRECONDITION),
    (UpstreamError, grpc.StatusCode.UNAVAILABLE),
    (OverloadedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (ConfigError, grpc.StatusCode.FAILED_PRECONDITION),
)


def status_for(error: TargetdError) -> grpc.StatusCode:
    """The gRPC status code for a domain error."""
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


def _metadata_for(error: TargetdError) -> tuple[tuple[str, str], ...]:
    if isinstance(error, UpstreamError) and error.status is not None:
        return (("targetd-upstream-status", str(error.status)),)
    if isinstance(error, InvalidRequestError) and error.field:
        return (("targetd-field", error.field),)
    return ()


R = TypeVar("R")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[R]]


def maps_errors(method: Handler[R]) -> Handler[R]:
    """Wrap a unary servicer method at the edge: a :class:`TargetdError` aborts with its status; any other
    exception is logged with its traceback and aborts with INTERNAL (the message names no internals). (The
    call's metrics are the metrics interceptor's, ``service/interceptors.py``.)"""
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> R:
        code = grpc.StatusCode.INTERNAL
        try:
            return await method(self, request, context)
        except TargetdError as error:
            code = status_for(error)
            trailing = _metadata_for(error)
            if trailing:
                context.set_trailing_metadata(trailing)
            message = str(error)
        except (grpc.aio.AbortError, grpc.aio.UsageError):
            raise
        except Exception:
            # A bug: logged once, with an id the caller also gets, so a report can be matched to its log line.
            error_id = new_id()
            log.exception("unhandled error in %s (error id %s)", name, error_id)
            message = f"internal error in targetd (error id {error_id}); see the server log and report it"
        await context.abort(code, message)
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

    return wrapper
