"""Building an artifact, the first half of build-then-swap: the downloaded (or given) bytes parsed,
checked against the artifact schema (:mod:`.schema`) and compiled by the engine, and the
``ArtifactInfo`` GetStatus shows for it. Nothing here touches the current snapshot: the provider
(:mod:`.provider`) installs what :func:`build` returns with one assignment, or keeps what it has when
:func:`build` raises.

Thread affinity: none; :func:`build` is CPU-bound and runs in a worker thread.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from targetd.v1 import decisioning_service_pb2 as pb
from targetd_server.artifacts.schema import SchemaError, check_artifact
from targetd_server.artifacts.sources import ArtifactFetchError, file_revision
from targetd_server.engine import (
    CompiledArtifact,
    InvalidArtifactError,
    UnsupportedArtifactVersionError,
    compile_artifact,
)

log = logging.getLogger("targetd.artifacts")

__all__ = ["Built", "artifact_info", "build"]


@dataclass(frozen=True, slots=True)
class Built:
    """A compiled artifact with the bytes and response headers it came from, ready to install."""

    compiled: CompiledArtifact
    body: bytes
    etag: str | None
    headers: dict[str, str]
    download_ms: float = 0.0
    parsing_ms: float = 0.0


def build(
    body: bytes,
    etag: str | None,
    headers: dict[str, str],
    location: str | None,
    *,
    polling_interval_ms: int,
    retrieved_at_ms: int,
    retrieval_count: int,
) -> Built:
    """Parse, check against the schema, compile. Raises :class:`ArtifactFetchError` (``invalid_artifact``
    or ``unsupported_version``) carrying the refused ``revision`` (``etag``, else the body's digest)."""
    revision = etag or file_revision(body)
    try:
        raw: Any = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ArtifactFetchError(
            "invalid_artifact", f"Unable to read artifact JSON: {exc}", revision=revision
        ) from None
    if _major_version(raw) == "1":  # other versions: compile_artifact says which are supported
        try:
            check_artifact(raw)
        except SchemaError as exc:
            raise ArtifactFetchError("invalid_artifact", str(exc), revision=revision) from None
    try:
        compiled = compile_artifact(
            raw,
            artifact_location=location,
            polling_interval_ms=polling_interval_ms,
            retrieved_at_ms=retrieved_at_ms,
            retrieval_count=retrieval_count,
        )
    except UnsupportedArtifactVersionError as exc:
        raise ArtifactFetchError("unsupported_version", str(exc), revision=revision) from None
    except InvalidArtifactError as exc:
        raise ArtifactFetchError("invalid_artifact", str(exc), revision=revision) from None
    except Exception as exc:  # an artifact the engine chokes on must never stop the provider
        log.exception("the engine failed to compile the artifact from %s", location or "artifact_payload")
        raise ArtifactFetchError(
            "invalid_artifact", f"Invalid artifact: {exc!r}", revision=revision
        ) from None
    return Built(compiled, body, etag, headers)


def artifact_info(built: Built, source: int, location: str, fetched_at_ns: int) -> pb.ArtifactInfo:
    """GetStatus's description of ``built``, as installed from ``source`` (``ArtifactSource``)."""
    meta = built.compiled.meta
    info = pb.ArtifactInfo(
        location=location,
        source=source,  # type: ignore[arg-type]
        revision=built.etag or file_revision(built.body),
        version=built.compiled.version,
        size_bytes=len(built.body),
        generated_at=str(meta.get("generatedAt") or ""),
        client_code=str(meta.get("clientCode") or ""),
        environment=str(meta.get("environment") or ""),
        workspace=str(meta.get("workspace") or ""),
        mbox_count=len(built.compiled.mbox_rules),
        view_count=len(built.compiled.view_rules),
        rule_count=built.compiled.rule_count,
    )
    info.fetched_at.FromNanoseconds(fetched_at_ns)
    return info


def _major_version(raw: Any) -> str | None:
    version = raw.get("version") if isinstance(raw, dict) else None
    return version.split(".", 1)[0] if isinstance(version, str) else None
