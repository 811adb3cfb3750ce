"""The last-known-good artifact on disk, so that a restart serves decisions with no network.

Layout under ``<data_dir>/artifacts``: ``rules-<sha256>.json`` (the artifact exactly as downloaded) and
``current.json`` (metadata: location, ETag, digest, size, fetch time) naming it. Both are written to a
temporary file, fsynced and renamed into place, body first, so a crash leaves either the old or the new
pair; a file that does not match its metadata is ignored with a warning.

Thread affinity: blocking file I/O; call from a worker thread (``asyncio.to_thread``). Nothing raises:
``load`` returns None and ``save`` logs when the disk misbehaves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

log = logging.getLogger("targetd.artifacts")

META_NAME: Final = "current.json"
FORMAT: Final = 1


@dataclass(frozen=True, slots=True)
class CachedArtifact:
    """An artifact read back from the cache."""

    body: bytes
    location: str
    etag: str | None
    fetched_at_ns: int
    path: Path


def _write_atomic(directory: Path, name: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, directory / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DiskCache:
    """The last-known-good store in ``directory`` (created on first save)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def meta_path(self) -> Path:
        """The metadata file."""
        return self.directory / META_NAME

    def save(self, body: bytes, *, location: str, etag: str | None, fetched_at_ns: int) -> bool:
        """Persist ``body`` as the last-known-good artifact for ``location``; returns whether it was."""
        digest = hashlib.sha256(body).hexdigest()
        body_name = f"rules-{digest}.json"
        meta = {
            "format": FORMAT,
            "location": location,
            "etag": etag,
            "sha256": digest,
            "size": len(body),
            "fetched_at_ns": fetched_at_ns,
            "file": body_name,
        }
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if not (self.directory / body_name).exists():
                _write_atomic(self.directory, body_name, body)
            _write_atomic(self.directory, META_NAME, json.dumps(meta, indent=1).encode())
            _fsync_dir(self.directory)
            for old in self.directory.glob("rules-*.json"):
                if old.name != body_name:
                    old.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot write the artifact cache in %s: %s", self.directory, exc)
            return False
        log.debug("artifact cached: %s (%d bytes)", body_name, len(body))
        return True

    def load(self, location: str) -> CachedArtifact | None:
        """The cached artifact for ``location``, or None (none, another location's, or corrupt: warned)."""
        path = self.meta_path
        if not path.exists():
            return None
        try:
            meta: Any = json.loads(path.read_bytes())
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ValueError("unknown metadata format")
            body_path = self.directory / str(meta["file"])
            if body_path.parent != self.directory:
                raise ValueError("metadata names a file outside the cache")
            body = body_path.read_bytes()
            if len(body) != meta["size"] or hashlib.sha256(body).hexdigest() != meta["sha256"]:
                raise ValueError(f"{body_path.name} does not match its recorded size and digest")
            cached = CachedArtifact(
                body=body,
                location=str(meta["location"]),
                etag=meta.get("etag") or None,
                fetched_at_ns=int(meta["fetched_at_ns"]),
                path=body_path,
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "ignoring the corrupt artifact cache in %s (%s); the next download replaces it",
                self.directory,
                exc,
            )
            return None
        if cached.location != location:
            log.info(
                "ignoring the artifact cache of %s: the configured location is %s", cached.location, location
            )
            return None
        return cached


__all__ = ["CachedArtifact", "DiskCache"]
