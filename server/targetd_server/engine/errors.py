"""Domain errors of the on-device decisioning engine.

The engine never imports grpc: the service layer maps these to gRPC status codes in one place
(``ArtifactError`` → FAILED_PRECONDITION/UNAVAILABLE, ``RequestValidationError`` → INVALID_ARGUMENT).
"""

from __future__ import annotations

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


class RequestValidationError(EngineError):
    """The Delivery request is invalid; the message is the SDKs' (e.g. "Either pageLoad or mboxes is
    required in execute"). ``field`` names the offending request field for the caller's error detail."""

    def __init__(self, message: str, field: str = "request") -> None:
        self.field = field
        super().__init__(message)
