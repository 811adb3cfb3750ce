"""The domain errors of targetd: one small hierarchy, mapped to gRPC status in one place
(``targetd_server.service.status``). Nothing here imports grpc.

Messages are short, factual, and name the remedy; where Adobe's SDKs have a message for the same
condition, it is used verbatim.
"""

from __future__ import annotations


class TargetdError(Exception):
    """Base of every error targetd reports to a caller."""


class InvalidRequestError(TargetdError):
    """The caller's input breaks a rule (maps to INVALID_ARGUMENT).

    ``field`` names the offending field (e.g. ``request.execute``) and is prefixed to the message.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}" if field else message)


class NotReadyError(TargetdError):
    """Decisions cannot be served yet, e.g. no artifact applied for on-device (maps to UNAVAILABLE)."""


class UnimplementedError(TargetdError):
    """The operation is not available in this build or configuration (maps to UNIMPLEMENTED)."""


class UpstreamError(TargetdError):
    """A call to Adobe Target (Delivery API, CDN, geo) failed (maps to UNAVAILABLE).

    ``status`` is the upstream HTTP status when there was a response, else ``None``.
    """

    def __init__(self, message: str, *, status: int | None = None, body: str | None = None) -> None:
        self.status = status
        self.body = body
        super().__init__(message)


class UpstreamRejectedError(UpstreamError):
    """Adobe Target refused the call with a 4xx (maps to FAILED_PRECONDITION): retrying will not help."""


class UpstreamTimeoutError(UpstreamError):
    """Adobe Target did not answer in time (maps to DEADLINE_EXCEEDED)."""


class OverloadedError(TargetdError):
    """A bounded resource is full (a subscriber queue, the outbox) (maps to RESOURCE_EXHAUSTED)."""


class ConfigError(TargetdError):
    """The service configuration is invalid; raised at start-up only."""


class ListenError(ConfigError):
    """The server cannot listen on its address (in use, not local); raised at start-up only. The message
    is ``cannot listen on HOST:PORT: <reason>``."""
