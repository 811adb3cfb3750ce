"""What the serving process and its sender process say to each other over the sender's pipes: the
settings, one JSON object line on the sender's stdin (:func:`settings_line`, :func:`read_settings`), and
the sender's status, one JSON line on its stdout each second and at each change of state
(:class:`SenderReport`; read by :mod:`.supervisor`).

Pure; no affinity.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from targetd_server.config import Settings

__all__ = ["SenderReport", "read_settings", "settings_line"]


@dataclass(slots=True)
class SenderReport:
    """What the sender tells the serving process (one JSON line each second): cumulative counters since
    this sender process started."""

    pid: int = field(default_factory=os.getpid)
    state: str = "running"
    delivered_rows: int = 0
    delivered_notifications: int = 0
    requests: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    open_hosts: list[str] = field(default_factory=list)
    circuit_trips: int = 0
    last_error: str = ""

    def line(self) -> bytes:
        """The report as one JSON line (bytes, newline-terminated)."""
        return (json.dumps(dataclasses.asdict(self), separators=(",", ":")) + "\n").encode()


def settings_line(settings: Settings) -> bytes:
    """The settings as the JSON line the sender process reads from stdin."""
    return (json.dumps(dataclasses.asdict(settings)) + "\n").encode()


def read_settings(line: bytes) -> Settings:
    """The settings of a :func:`settings_line`. Raises ``ValueError`` (not JSON) or ``TypeError`` (not
    the settings' fields)."""
    data: dict[str, Any] = json.loads(line)
    return Settings(**data)
