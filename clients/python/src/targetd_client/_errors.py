"""The client's exception types. Users catch these; they never need to import grpc.

Every error raised by a call to targetd is a :class:`TargetdRpcError` (or a subclass per status code) that
carries the gRPC status code as :class:`StatusCode`, the server's message, and what the server adds in its
trailing metadata (``field`` for INVALID_ARGUMENT, ``upstream_status`` for Delivery API failures).
"""

from __future__ import annotations

import enum
from typing import Any

import grpc

__all__ = [
    "ArtifactDownloadError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "InvalidOptionsError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "StatusCode",
    "TargetClientError",
    "TargetdRpcError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "error_from_rpc",
]


class StatusCode(enum.IntEnum):
    """The gRPC status codes (same names and numbers as ``grpc.StatusCode``)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class TargetClientError(Exception):
    """Base of every error this package raises."""


class InvalidOptionsError(TargetClientError, ValueError):
    """The options given to ``create`` or to a call break a rule; the message is the SDK's where it has one
    (e.g. ``"Client is required"``). Raised before anything is sent."""


class TargetdRpcError(TargetClientError):
    """A call to targetd failed.

    Attributes: ``code`` (:class:`StatusCode`), ``details`` (the server's message), ``field`` (the offending
    request field for INVALID_ARGUMENT, when the server names one), ``upstream_status`` (the Delivery API's
    HTTP status when targetd's upstream call failed), ``status`` (the SDK's ``ApiException.status`` name for
    ``upstream_status``).
    """

    code: StatusCode = StatusCode.UNKNOWN

    def __init__(
        self,
        details: str,
        *,
        code: StatusCode | None = None,
        field: str | None = None,
        upstream_status: int | None = None,
    ) -> None:
        if code is not None:
            self.code = code
        self.details = details
        self.field = field
        self.upstream_status = upstream_status
        super().__init__(f"{self.code.name}: {details}")

    @property
    def status(self) -> int | None:
        """The upstream HTTP status (the SDK's ``ApiException.status``), or None."""
        return self.upstream_status


class InvalidArgumentError(TargetdRpcError):
    """INVALID_ARGUMENT: the request breaks a rule; ``field`` names it."""

    code = StatusCode.INVALID_ARGUMENT


class UnavailableError(TargetdRpcError):
    """UNAVAILABLE: targetd cannot be reached, is not ready (on-device before the artifact), or Target's
    Delivery API failed (``upstream_status``). Retrying later can help."""

    code = StatusCode.UNAVAILABLE


class DeadlineExceededError(TargetdRpcError):
    """DEADLINE_EXCEEDED: the ``timeout`` passed before targetd (or Target behind it) answered."""

    code = StatusCode.DEADLINE_EXCEEDED


class FailedPreconditionError(TargetdRpcError):
    """FAILED_PRECONDITION: Target refused the call (4xx, ``upstream_status``) or targetd's configuration
    does not allow it."""

    code = StatusCode.FAILED_PRECONDITION


class UnauthenticatedError(TargetdRpcError):
    """UNAUTHENTICATED: the ``auth_token`` option is missing or wrong."""

    code = StatusCode.UNAUTHENTICATED


class PermissionDeniedError(TargetdRpcError):
    """PERMISSION_DENIED."""

    code = StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(TargetdRpcError):
    """RESOURCE_EXHAUSTED: a bound was hit (message size, a subscriber queue)."""

    code = StatusCode.RESOURCE_EXHAUSTED


class UnimplementedError(TargetdRpcError):
    """UNIMPLEMENTED: this targetd does not offer the operation."""

    code = StatusCode.UNIMPLEMENTED


class ArtifactDownloadError(TargetClientError):
    """The ``error`` of an ``artifact_download_failed`` event: ``kind`` (e.g. ``"http_status"``,
    ``"network"``, ``"invalid_artifact"``), ``http_status`` (0 when there was no HTTP response)."""

    def __init__(self, message: str, *, kind: str = "", http_status: int = 0) -> None:
        self.kind = kind
        self.http_status = http_status
        super().__init__(message)


_BY_CODE: dict[StatusCode, type[TargetdRpcError]] = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        UnavailableError,
        DeadlineExceededError,
        FailedPreconditionError,
        UnauthenticatedError,
        PermissionDeniedError,
        ResourceExhaustedError,
        UnimplementedError,
    )
}


def _metadata_value(metadata: Any, key: str) -> str | None:
    for item in metadata or ():
        name, value = item[0], item[1]
        if name == key:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def error_from_status(code: grpc.StatusCode | None, details: str | None, trailing: Any) -> TargetdRpcError:
    """Build the client error for a failed call from its status code, details and trailing metadata."""
    number = code.value[0] if code is not None else StatusCode.UNKNOWN.value
    status = StatusCode(number)
    upstream = _metadata_value(trailing, "targetd-upstream-status")
    cls = _BY_CODE.get(status, TargetdRpcError)
    return cls(
        details or status.name,
        code=status,
        field=_metadata_value(trailing, "targetd-field"),
        upstream_status=int(upstream) if upstream and upstream.isdigit() else None,
    )


def error_from_rpc(error: grpc.RpcError) -> TargetdRpcError:
    """The client error for a ``grpc.RpcError`` raised by a synchronous call (a ``grpc.Call``)."""
    call: Any = error
    try:
        return error_from_status(call.code(), call.details(), call.trailing_metadata())
    except AttributeError:  # an RpcError that is not a Call (rare: raised before the call started)
        return TargetdRpcError(str(error))
