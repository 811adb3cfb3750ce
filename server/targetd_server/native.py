"""Which of targetd's modules run compiled (mypyc, ``make compile``: ``tools/compile.py``), and whether
each compiled module still matches its source.

The build writes ``_native.json`` beside this module: the SHA-256 of each compiled source. Python loads a
module's extension (``.so``) before its ``.py``, so an extension built from an older source would run the
old code: :func:`native_status` compares every listed source with the manifest, and ``targetd serve``
logs the result once at start (a warning naming the stale modules and the remedy). Without a manifest
(no compiler, a pure-Python install) everything runs from source, which is correct, only slower.

Thread affinity: none (reads files; call it before serving, not per call).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MANIFEST", "NativeStatus", "log_native_status", "native_status", "source_digest"]

MANIFEST = Path(__file__).resolve().parent / "_native.json"
_EXTENSIONS = tuple(importlib.machinery.EXTENSION_SUFFIXES)


@dataclass(frozen=True, slots=True)
class NativeStatus:
    """``compiled``: listed modules whose extension matches its source; ``stale``: listed modules whose
    source changed since the build (their extension runs the old code); ``source``: listed modules that
    load from source (no extension for this Python)."""

    compiled: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    source: tuple[str, ...] = ()


def source_digest(path: Path) -> str:
    """The SHA-256 the manifest records for a source (written by tools/compile.py, checked here)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def native_status(manifest: Path = MANIFEST) -> NativeStatus:
    """Read ``manifest`` and check each listed module's extension and source. Never raises: an unreadable
    manifest counts as none."""
    try:
        listed = json.loads(manifest.read_text())["modules"]
    except (OSError, ValueError, KeyError, TypeError):
        return NativeStatus()
    root = manifest.parent.parent  # (the manifest lies in the package: its sources are found from it)
    compiled: list[str] = []
    stale: list[str] = []
    source: list[str] = []
    for name, expected in sorted(listed.items()):
        loaded = sys.modules.get(name)
        spec = loaded.__spec__ if loaded is not None else importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        if origin is None or not origin.endswith(_EXTENSIONS):
            source.append(name)
            continue
        py = root.joinpath(*name.split(".")).with_suffix(".py")
        if not py.is_file():
            py = py.with_suffix("") / "__init__.py"
        try:
            current = source_digest(py)
        except OSError:
            current = ""
        (compiled if current == expected else stale).append(name)
    return NativeStatus(tuple(compiled), tuple(stale), tuple(source))


def log_native_status(log: logging.Logger, status: NativeStatus | None = None) -> None:
    """Log once what :func:`native_status` found: info when every listed module is compiled and fresh
    (or none is listed), a warning naming stale or uncompiled modules."""
    status = native_status() if status is None else status
    if status.stale:
        log.warning(
            "compiled modules older than their source run the old code: run `make compile`",
            extra={"stale": ",".join(status.stale)},
        )
    if status.source:
        log.warning(
            "modules listed as compiled load from source (slower): run `make compile`",
            extra={"modules": ",".join(status.source)},
        )
    if not (status.stale or status.source):
        log.info("compiled modules", extra={"count": len(status.compiled)})
