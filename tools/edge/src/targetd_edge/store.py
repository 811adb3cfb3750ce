"""The local edge's record of what it received: notifications and telemetry entries in its own SQLite file.

Thread affinity: any thread (one connection guarded by a lock).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from targetd.json_format import message_to_dict
from targetd.v1 import delivery_pb2

__all__ = ["EdgeStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ns INTEGER NOT NULL,
    request_id TEXT,
    session_id TEXT,
    notification_id TEXT,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS telemetry (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ns INTEGER NOT NULL,
    request_id TEXT,
    body TEXT NOT NULL
);
"""


class EdgeStore:
    """Notifications and telemetry entries received by the local edge, in arrival order."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)

    def record(self, request: delivery_pb2.DeliveryRequest, session_id: str | None) -> tuple[int, int]:
        """Store the notifications and telemetry entries of ``request``; returns their counts."""
        now = time.time_ns()
        notes = [
            (now, request.request_id, session_id, n.id, json.dumps(message_to_dict(n)))
            for n in request.notifications
        ]
        entries = [
            (now, request.request_id, json.dumps(message_to_dict(e))) for e in request.telemetry.entries
        ]
        if not notes and not entries:
            return 0, 0
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT INTO notifications (received_ns, request_id, session_id, notification_id, body) "
                "VALUES (?, ?, ?, ?, ?)",
                notes,
            )
            self._conn.executemany(
                "INSERT INTO telemetry (received_ns, request_id, body) VALUES (?, ?, ?)", entries
            )
            self._conn.execute("COMMIT")
        return len(notes), len(entries)

    def notifications(self) -> list[dict[str, Any]]:
        """Every notification received: ``{seq, receivedNs, requestId, sessionId, notification}``."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, received_ns, request_id, session_id, body FROM notifications ORDER BY seq"
            ).fetchall()
        return [
            {"seq": s, "receivedNs": r, "requestId": q, "sessionId": sid, "notification": json.loads(b)}
            for s, r, q, sid, b in rows
        ]

    def telemetry(self) -> list[dict[str, Any]]:
        """Every telemetry entry received: ``{seq, receivedNs, requestId, entry}``."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, received_ns, request_id, body FROM telemetry ORDER BY seq"
            ).fetchall()
        return [{"seq": s, "receivedNs": r, "requestId": q, "entry": json.loads(b)} for s, r, q, b in rows]

    def clear(self) -> None:
        """Forget everything received."""
        with self._lock:
            self._conn.execute("DELETE FROM notifications")
            self._conn.execute("DELETE FROM telemetry")

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()
