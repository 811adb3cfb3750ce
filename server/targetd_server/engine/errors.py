"""Domain errors of the on-device decisioning engine.

The engine never imports grpc: the service layer maps these to gRPC status codes in one place
(``ArtifactError`` → FAILED_PRECONDITION/UNAVAILABLE, ``RequestValidationError`` → INVALID_ARGUMENT,
being an ``InvalidRequestError`` of the service's hierarchy).
"""

from __future__ import annotations

from targetd_server.errors import InvalidRequestError

__all__ = [
    "ArtifactError",
    "EngineError",
    "InvalidArtifactError",
    "RequestValidationError",
    "UnsupportedArtifactVersionError",
]


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class ArtifactError(EngineError):
    """The rules artifact cannot be used."""


class InvalidArtifactError(ArtifactError):
    """The artifact is malformed (not an object, wrong types, an unknown JSON Logic operator, ...)."""


class UnsupportedArtifactVersionError(ArtifactError):
    """The artifact's major schema version is not the one this engine understands (1)."""

    def __init__(self, version: str, supported_major: int = 1) -> None:
        self.version = version
        self.supported_major = supported_major
        super().__init__(
            f"The decisioning artifact version ({version}) is not supported. "
            f"This library is compatible with this major version: {supported_major}"
        )


class RequestValidationError(EngineError, InvalidRequestError):
    """The Delivery request is invalid; the message is the SDKs' (e.g. "Either pageLoad or mboxes is
    required in execute"). ``field`` names the offending request field for the caller's error detail.

    It is an :class:`~targetd_server.errors.InvalidRequestError` (a pure module, no grpc), so the service
    maps it to INVALID_ARGUMENT in its one place, like every other invalid input."""

    def __init__(self, message: str, field: str = "request") -> None:
        InvalidRequestError.__init__(self, message, field=field)
