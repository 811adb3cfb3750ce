"""Where the rules come from: CDN/URL polling with ETag, local file, payload; validation by compiling;
last-known-good on disk; atomic swap of an immutable :class:`ArtifactSnapshot`; events on the bus."""

from targetd_server.artifacts.provider import ArtifactProvider, effective_polling_interval
from targetd_server.artifacts.snapshot import ArtifactSnapshot
from targetd_server.artifacts.sources import ArtifactFetchError, artifact_location

__all__ = [
    "ArtifactFetchError",
    "ArtifactProvider",
    "ArtifactSnapshot",
    "artifact_location",
    "effective_polling_interval",
]
