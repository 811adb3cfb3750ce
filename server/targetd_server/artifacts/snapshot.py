"""The immutable artifact snapshot that on-device decisions read.

The provider builds a complete :class:`ArtifactSnapshot` (parsed, validated, compiled) and installs it with
one attribute assignment, so a decision that picked up the previous snapshot finishes on it unharmed.
"""

from __future__ import annotations

from dataclasses import dataclass

from targetd.v1 import decisioning_service_pb2 as pb
from targetd_server.engine import CompiledArtifact


@dataclass(frozen=True, slots=True)
class ArtifactSnapshot:
    """One applied artifact. Immutable by contract: never mutate ``info`` (copy it). Thread-safe to read.

    ``compiled`` is the engine's compiled artifact, ``info`` what GetStatus and the events report,
    ``raw`` the artifact JSON exactly as received (UTF-8 bytes), ``etag`` the upstream ETag if any.
    """

    compiled: CompiledArtifact
    info: pb.ArtifactInfo
    raw: bytes
    etag: str | None = None

    @property
    def revision(self) -> str:
        """The ETag, or a content digest when there is none."""
        return self.info.revision
