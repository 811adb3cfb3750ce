"""The durable outbox: what targetd generates itself (display notifications of on-device executes,
telemetry) is written to SQLite before the RPC returns and delivered to the Delivery API in the background.

Storage: ``{data_dir}/outbox.sqlite3`` in WAL mode with ``synchronous=NORMAL``: a committed row survives a
crash or SIGKILL of the process (it is in the WAL file); an OS crash or power cut may lose the last
commits. One row per Delivery request (serialised protobuf), with the session id and edge cluster to send
it with.

Delivery: a background thread takes up to ``outbox_batch_size`` rows, oldest first, merges telemetry-only
rows into one request, and POSTs them with ``outbox_concurrency`` calls in flight. A row is **deleted only
after a 2xx** answer. A 4xx other than 408/425/429 means the Delivery API will never accept the row: it is
marked dead (kept on disk, not retried, counted). Anything else (5xx, network, timeout) leaves the row in
place and the sender waits an exponential backoff with full jitter (0.1 s doubling, capped by
``outbox_max_backoff``) before the next round; a new row wakes an idle sender at once.

Delivery guarantee: **at least once**. A row is sent again only when the process stopped (crash, SIGKILL)
or the answer was lost (timeout, dropped connection) after the Delivery API accepted it and before the row
was deleted; a re-sent row carries the same notification ids, so duplicates can be recognised.

Bound: ``outbox_max_rows`` rows (pending + dead). When full, new rows are refused — the decision itself is
still served — counted in ``targetd_outbox_dropped_total`` and logged (at most once a minute): the oldest
data is kept.

Shutdown: :meth:`Outbox.close` sends what it can within ``outbox_flush_timeout`` (it stops at the first
failed round) and keeps the rest on disk for the next start.

Thread affinity: :meth:`Outbox.enqueue` is synchronous and cheap (one INSERT and commit, tens of µs):
call it from any one thread (the event loop). :meth:`close` blocks: call it via ``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from prometheus_client import Counter, Gauge

from targetd.v1 import delivery_pb2
from targetd_server.delivery.store import OutboxStore
from targetd_server.errors import UpstreamRejectedError
from targetd_server.ids import new_id
from targetd_server.metrics import REGISTRY

log = logging.getLogger("targetd.outbox")

__all__ = ["Outbox", "OutboxStats", "Sender"]

Sender = Callable[[delivery_pb2.DeliveryRequest, str, "str | None", float], object]
"""``send(request, session_id, cluster, timeout_s)``: POST it; raises on failure (blocking)."""

BACKOFF_BASE: Final = 0.1
IDLE_WAIT: Final = 5.0
MAX_MERGED_ENTRIES: Final = 500
_FULL_LOG_INTERVAL: Final = 60.0

PENDING = Gauge("targetd_outbox_pending", "Outbox rows waiting to be sent.", registry=REGISTRY)
DEAD = Gauge(
    "targetd_outbox_dead", "Outbox rows the Delivery API rejected (kept, not retried).", registry=REGISTRY
)
SENT = Counter("targetd_outbox_sent", "Outbox rows accepted by the Delivery API.", registry=REGISTRY)
DROPPED = Counter("targetd_outbox_dropped", "Rows refused because the outbox was full.", registry=REGISTRY)
FAILED_ROUNDS = Counter(
    "targetd_outbox_failed_rounds",
    "Send rounds with a retryable failure (backoff follows).",
    registry=REGISTRY,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ns INTEGER NOT NULL,
    session_id TEXT,
    cluster TEXT,
    telemetry_only INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    dead INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_live ON outbox (dead, id);
"""


_INSERT = (
    "INSERT INTO outbox (created_ns, session_id, cluster, telemetry_only, payload) VALUES (?, ?, ?, ?, ?)"
)


@dataclass(slots=True)
class OutboxStats:
    """Counters since start (``pending``/``dead`` are what is on disk now)."""

    pending: int = 0
    dead: int = 0
    sent: int = 0
    dropped: int = 0
    failed_rounds: int = 0


@dataclass(slots=True)
class _Group:
    ids: list[int]
    request: delivery_pb2.DeliveryRequest
    session_id: str
    cluster: str | None
    error: BaseException | None = field(default=None)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class Outbox:
    """See the module docstring. ``send`` delivers one request (blocking) and raises on failure."""

    def __init__(
        self,
        path: Path,
        send: Sender,
        *,
        max_rows: int = 100000,
        batch_size: int = 100,
        concurrency: int = 16,
        max_backoff: float = 60.0,
        send_timeout: float = 3.0,
        lock_fd: int | None = None,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._send = send
        self._max_rows = max(1, max_rows)
        self._batch = max(1, batch_size)
        self._max_backoff = max(BACKOFF_BASE, max_backoff)
        self._send_timeout = send_timeout
        self._lock = threading.Lock()
        self._writer = _connect(path)
        self._writer.executescript(_SCHEMA)
        # The writer runs on the event loop: it never checkpoints; the sender thread does (after each round).
        self._writer.execute("PRAGMA wal_autocheckpoint=0")
        pending, dead = self._writer.execute(
            "SELECT COALESCE(SUM(dead = 0), 0), COALESCE(SUM(dead = 1), 0) FROM outbox"
        ).fetchone()
        self.stats = OutboxStats(pending=int(pending), dead=int(dead))
        PENDING.set(self.stats.pending)
        DEAD.set(self.stats.dead)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._flush_deadline = 0.0
        self._pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="targetd-outbox")
        self._thread: threading.Thread | None = None
        self._last_full_log = 0.0
        self._closed = False
        self._lock_fd = lock_fd  # released by close(): see claim_outbox_path
        if self.stats.pending:
            log.info("outbox: %d rows from a previous run will be sent again", self.stats.pending)

    # ------------------------------------------------------------------------------------ producer

    def enqueue(
        self, request: delivery_pb2.DeliveryRequest, *, session_id: str | None, cluster: str | None
    ) -> bool:
        """Store ``request`` durably for delivery; False when the outbox is full (counted, logged)."""
        with self._lock:
            if self.stats.pending + self.stats.dead >= self._max_rows:
                self.stats.dropped += 1
                DROPPED.inc()
                now = time.monotonic()
                if now - self._last_full_log >= _FULL_LOG_INTERVAL:
                    self._last_full_log = now
                    log.warning(
                        "outbox full (%d rows in %s): new notifications/telemetry are dropped until the "
                        "Delivery API accepts the backlog (%d dropped so far); raise outbox_max_rows or "
                        "check connectivity to Target",
                        self._max_rows,
                        self.path,
                        self.stats.dropped,
                    )
                return False
            row = (
                time.time_ns(),
                session_id,
                cluster,
                int(not request.notifications),
                request.SerializeToString(),
            )
            if self._closed:  # a call still in flight at shutdown: stored for the next start
                late = _connect(self.path)
                try:
                    late.execute(_INSERT, row)
                finally:
                    late.close()
            else:
                self._writer.execute(_INSERT, row)
            self.stats.pending += 1
            PENDING.set(self.stats.pending)
        self._wake.set()
        return True

    # ------------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the background sender (rows left by a previous run are sent first)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="targetd-outbox-sender", daemon=True)
            self._thread.start()

    def close(self, flush_timeout: float = 5.0) -> None:
        """Send what can be sent within ``flush_timeout`` seconds, stop, and close the database. Rows not
        accepted stay on disk; rows enqueued afterwards (calls still in flight) are written to disk for the
        next start. Blocks; safe to call more than once."""
        thread = self._thread
        self._flush_deadline = time.monotonic() + max(0.0, flush_timeout)
        self._stopping.set()
        self._wake.set()
        if thread is not None:
            thread.join(max(0.0, flush_timeout) + self._send_timeout + 1.0)
            self._thread = None
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            if self.stats.pending:
                log.info("outbox: %d rows kept in %s for the next start", self.stats.pending, self.path)
            self._writer.close()
            self._closed = True
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    # ------------------------------------------------------------------------------------ sender

    def _run(self) -> None:
        reader = _connect(self.path)
        failures = 0
        try:
            while True:
                if self._stopping.is_set() and time.monotonic() >= self._flush_deadline:
                    return
                rows = reader.execute(
                    "SELECT id, session_id, cluster, telemetry_only, payload FROM outbox "
                    "WHERE dead = 0 ORDER BY id LIMIT ?",
                    (self._batch,),
                ).fetchall()
                if not rows:
                    if self._stopping.is_set():
                        return
                    if self._adopt_orphans(reader):
                        continue
                    self._wake.wait(IDLE_WAIT)
                    self._wake.clear()
                    continue
                if self._round(reader, rows):
                    failures = 0
                    continue
                failures += 1
                self.stats.failed_rounds += 1
                FAILED_ROUNDS.inc()
                if self._stopping.is_set():
                    return  # flushing gives up at the first failed round; the rest stays on disk
                delay = random.uniform(0, min(self._max_backoff, BACKOFF_BASE * 2 ** min(failures, 30)))
                log.debug("outbox: backing off %.2f s after %d failed rounds", delay, failures)
                self._stopping.wait(delay)
        except Exception:
            log.exception("outbox sender stopped unexpectedly; rows stay on disk for the next start")
        finally:
            reader.close()

    def _adopt_orphans(self, conn: sqlite3.Connection) -> int:
        """Take over the rows of outbox files whose process is gone (see ``outbox_files``)."""
        with self._lock:
            return OutboxStore(self.path, conn).adopt_orphans()

    def _groups(self, rows: list[tuple[int, str | None, str | None, int, bytes]]) -> list[_Group]:
        groups: list[_Group] = []
        merged: _Group | None = None
        for row_id, session_id, cluster, telemetry_only, payload in rows:
            request = delivery_pb2.DeliveryRequest.FromString(payload)
            if telemetry_only:
                if merged is not None and len(merged.request.telemetry.entries) < MAX_MERGED_ENTRIES:
                    merged.request.telemetry.entries.extend(request.telemetry.entries)
                    merged.ids.append(row_id)
                    continue
                merged = _Group([row_id], request, session_id or new_id(), cluster)
                groups.append(merged)
                continue
            groups.append(_Group([row_id], request, session_id or new_id(), cluster))
        return groups

    def _deliver(self, group: _Group, timeout: float) -> _Group:
        try:
            self._send(group.request, group.session_id, group.cluster, timeout)
        except Exception as exc:
            group.error = exc
        return group

    def _round(
        self, conn: sqlite3.Connection, rows: list[tuple[int, str | None, str | None, int, bytes]]
    ) -> bool:
        """Send one batch; True when nothing failed retryably."""
        timeout = self._send_timeout
        if self._stopping.is_set():
            timeout = max(0.05, min(timeout, self._flush_deadline - time.monotonic()))
        groups = list(self._pool.map(lambda g: self._deliver(g, timeout), self._groups(rows)))
        accepted = [i for g in groups if g.error is None for i in g.ids]
        rejected = [
            (str(g.error), i) for g in groups if isinstance(g.error, UpstreamRejectedError) for i in g.ids
        ]
        failed = [
            (str(g.error), i)
            for g in groups
            if g.error is not None and not isinstance(g.error, UpstreamRejectedError)
            for i in g.ids
        ]
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in accepted])
            conn.executemany("UPDATE outbox SET dead = 1, last_error = ? WHERE id = ?", rejected)
            conn.executemany("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?", failed)
            conn.execute("COMMIT")
            self.stats.pending -= len(accepted) + len(rejected)
            self.stats.dead += len(rejected)
            self.stats.sent += len(accepted)
            PENDING.set(self.stats.pending)
            DEAD.set(self.stats.dead)
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # outside the lock: it does not block the writer
        SENT.inc(len(accepted))
        for message, row_id in rejected:
            log.error("outbox: the Delivery API rejected row %d, kept as dead: %s", row_id, message)
        if failed:
            log.warning("outbox: %d rows not delivered, will retry: %s", len(failed), failed[0][0])
        return not failed
