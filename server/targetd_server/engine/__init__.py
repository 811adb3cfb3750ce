"""targetd's pure on-device decisioning engine (Adobe Target artifact schema v1, Node SDK semantics).

No grpc import and no I/O: compile an artifact once with :func:`compile_artifact`, then call
:func:`decide` for each Delivery request. Display notifications and telemetry come back as data::

    artifact = compile_artifact(json.loads(rules_json))          # InvalidArtifactError / Unsupported...
    geo = lookup(ip) if needs_geo_lookup(artifact, request) else None   # the I/O layer's job
    result = decide(artifact, request, client="acme", session_id=sid, location_hint="28",
                    property_token=None, telemetry_enabled=True, geo=geo)   # RequestValidationError
    result.response            # DeliveryResponse (status 200/206, requestId, id, client, execute, prefetch)
    result.request             # the validated request (generated tntId, merged geo, ...)
    result.notifications       # display notifications of executed decisions
    result.telemetry_entry     # TelemetryEntry (mode "local") or None when telemetry is off
    result.remote_mboxes, result.remote_views     # hybrid: what needs the Delivery API
    telemetry.add_entry(result.telemetry_entry)   # a TelemetryProvider per client (Node's store)
    outbound = build_notification_request(result.request, result.notifications, telemetry.drain())

Modules: ``artifact`` (compile), ``decide`` (decisions), ``request`` (validation, completed request),
``context``/``urls``/``useragent`` (rule context), ``jsonlogic``/``jsvalues`` (conditions),
``allocation``, ``macros``, ``trace``, ``notifications``, ``telemetry``, ``geo``, ``remote``, ``errors``.
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
from targetd_server.engine.geo import UNKNOWN_IP_ADDRESS, geo_from_lookup, needs_geo_lookup
from targetd_server.engine.notifications import build_notification_request
from targetd_server.engine.remote import RemoteDependency, has_remote_dependency
from targetd_server.engine.telemetry import TelemetryProvider, delivery_request_entry

__all__ = [
    "UNKNOWN_IP_ADDRESS",
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
