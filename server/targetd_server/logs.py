"""Structured logging: one JSON object per line on stderr (or plain text for development), and
:class:`Throttled`, the rate limit of log lines about invalid input.

gRPC core (C++) writes its own lines to stderr in absl's plain-text format, outside Python's logging:
:func:`quiet_grpc_core` (run when ``targetd_server`` is imported, before grpc is) keeps them to errors
(``GRPC_VERBOSITY=ERROR`` unless set), which are rare and which targetd also reports in its own words
where it sees them (a port in use). ``GRPC_VERBOSITY=INFO`` or ``DEBUG`` and ``GRPC_TRACE`` bring them
back for debugging. gRPC's Python layer logs through :mod:`logging` (JSON like every line), and Python
warnings are captured into the same stream.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, Final

_RESERVED: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON with time, level, logger, message and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, fmt: str) -> None:
    """Install the root handler (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # warnings.warn(...) lines in the same stream, not bare on stderr


def quiet_grpc_core(environ: dict[str, str] | None = None) -> None:
    """Keep gRPC core's own log lines to errors (``GRPC_VERBOSITY=ERROR``) unless the environment sets a
    verbosity. Effective only before grpc is imported; ``targetd_server/__init__.py`` calls it."""
    (os.environ if environ is None else environ).setdefault("GRPC_VERBOSITY", "ERROR")


class Throttled:
    """Log lines about invalid input, at most once per ``kind`` per ``interval`` seconds, each cut to
    ``max_chars`` characters; the next line of a kind says how many were suppressed since the last.

    Callers pass only what identifies the problem (a field path, a rule, an id), never the caller's
    parameter or profile values. The kinds held are bounded by ``max_kinds`` (past it, the oldest kind is
    forgotten: at worst one extra line). Thread affinity: none (a lost update under threads only costs an
    extra or a missing count); ``clock`` is ``time.monotonic`` unless a test passes its own.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = 60.0,
        max_chars: int = 300,
        max_kinds: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._max_chars = max_chars
        self._max_kinds = max_kinds
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, kind: str, message: str) -> bool:
        """Log ``message`` at warning level unless ``kind`` was logged less than ``interval`` ago;
        returns whether it was logged."""
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return False
        if last is None and len(self._last) >= self._max_kinds:
            oldest = next(iter(self._last))
            del self._last[oldest]
            self._suppressed.pop(oldest, None)
        self._last.pop(kind, None)
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        text = message if len(message) <= self._max_chars else message[: self._max_chars] + "…"
        if suppressed:
            text += f" ({suppressed} more like it in the last {self._interval:g} s not logged)"
        self._logger.warning("%s", text, extra={"kind": kind})
        return True
