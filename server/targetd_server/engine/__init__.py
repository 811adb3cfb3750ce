"""targetd's pure on-device decisioning engine (Adobe Target artifact schema v1, Node SDK semantics).

No grpc import and no I/O: compile an artifact once with :func:`compile_artifact`, then call
:func:`decide` for each Delivery request. Display notifications and telemetry come back as data.
"""

from targetd_server.engine.artifact import CompiledArtifact, CompiledRule, compile_artifact
from targetd_server.engine.decide import DecisionResult, decide, validate_delivery_request
from targetd_server.engine.errors import (
    ArtifactError,
    EngineError,
    InvalidArtifactError,
    RequestValidationError,
    UnsupportedArtifactVersionError,
)
from targetd_server.engine.geo import geo_from_lookup, needs_geo_lookup
from targetd_server.engine.notifications import build_notification_request
from targetd_server.engine.remote import RemoteDependency, has_remote_dependency
from targetd_server.engine.telemetry import TelemetryProvider, delivery_request_entry

__all__ = [
    "ArtifactError",
    "CompiledArtifact",
    "CompiledRule",
    "DecisionResult",
    "EngineError",
    "InvalidArtifactError",
    "RemoteDependency",
    "RequestValidationError",
    "TelemetryProvider",
    "UnsupportedArtifactVersionError",
    "build_notification_request",
    "compile_artifact",
    "decide",
    "delivery_request_entry",
    "geo_from_lookup",
    "has_remote_dependency",
    "needs_geo_lookup",
    "validate_delivery_request",
]
