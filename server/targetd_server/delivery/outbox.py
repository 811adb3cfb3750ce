"""The serving side of the durable outbox: what targetd generates itself (display notifications of
on-device executes, telemetry) is written to SQLite before the RPC returns, with **group commit**; the
sender process (``delivery/sender.py``) delivers it from the same file (:mod:`.store`).

Group commit: :meth:`Outbox.enqueue` appends the row to the open group and returns the group's future.
With ``outbox_commit_window`` 0 (the default) the window follows the load:

* a row that finds the loop with nothing else to do (no other callback ready: a lone call, every call at
  c=1) is committed at once — no wait, and the caller's await costs no extra turn of the loop;
* a row that finds other work ready (other calls in flight) opens a group of up to ``BUSY_WINDOW`` (1 ms)
  that the calls of that millisecond join: one transaction for several calls, and their handlers
  suspended meanwhile let grpc.aio handle its events in bigger batches (under grpc.aio each call starts
  in a turn of its own, so grouping within a turn alone held ~1 row; the measured trade-off is in
  docs/remote.md, *Group commit*);
* the calls later in a turn whose first row was committed at once share a group committed at its end.

With a window, every group is committed after ``outbox_commit_window`` ms. Either way a group is committed
at once when it holds ``outbox_commit_rows`` rows. The RPC awaits the future, so "stored before the reply"
holds: the future is
True once the rows are committed (they survive a SIGKILL: WAL, ``synchronous=NORMAL``), False when they
could not be stored — the decision is still served.

The commit runs on the loop and never waits there: the connection has no busy timeout, so while the
sender holds SQLite's write lock (its transactions are short) the group stays open and is tried again
``BUSY_RETRY`` later (asked 0.2 ms, doubling to 2 ms while the lock stays held; 1 ms at least in
effect, see ``BUSY_RETRY``), new calls joining it; after
``COMMIT_TIMEOUT`` seconds of that it is dropped (``storage_busy``).
Nor does a commit ever checkpoint the WAL (``wal_autocheckpoint`` 0 on this connection: an automatic
checkpoint copies up to thousands of pages and syncs: 20 to 45 ms on the loop, measured): the sender
checkpoints every second (or 1,000 rows), and :meth:`Outbox.refresh` checkpoints off the loop when the
WAL passes ``WAL_CHECKPOINT_BYTES`` (the sender down).

Back-pressure, honest: a row is never stored past ``outbox_max_rows`` waiting rows (``outbox_full``);
SQLITE_FULL (``disk_full``) and any other storage failure (``storage_error``) drop the group. Each drop is
counted by reason (``targetd_outbox_dropped_total{reason}``, GetStatus ``outbox.dropped``), logged at most
once a minute per reason, and marks the pipeline degraded until a commit succeeds again; the decisions
themselves are served and health stays SERVING. When space returns the next group is stored as usual.

Thread/loop affinity: create, :meth:`Outbox.enqueue`, :meth:`Outbox.refresh` and :meth:`Outbox.close` on
the serving event loop. :meth:`Outbox.status` anywhere (it reads what :meth:`refresh` gathered).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from targetd.v1 import decisioning_service_pb2, delivery_pb2
from targetd_server.delivery.outbox_metrics import (
    OUTBOX_BACKLOG,
    OUTBOX_DEGRADED,
    OUTBOX_OLDEST_AGE,
    OUTBOX_QUARANTINED,
    OUTBOX_STORED,
    outbox_dropped,
)
from targetd_server.delivery.store import OutboxStore, StoreStats, is_disk_full, now_ms, open_or_replace

log = logging.getLogger("targetd.outbox")

__all__ = ["DROP_REASONS", "Outbox", "OutboxState"]

DROP_REASONS: Final = ("outbox_full", "disk_full", "storage_busy", "storage_error")
COMMIT_TIMEOUT: Final = 2.0
"""Seconds a group may wait for SQLite's write lock (held by the sender) before it is dropped."""
BUSY_RETRY: Final = 0.0002
"""Seconds asked until a group that met the sender's write lock is tried again, doubling per failed try
up to ``BUSY_RETRY_MAX``: a longer hold (the sender adopting an orphaned file) costs the loop a few tries,
not thousands. In effect the first tries wait 1 ms: asyncio's epoll selector rounds a timeout up to the
millisecond (epoll's resolution), and so do uvloop's timers. Measured (2026-12-04, GetOffers c=1 with
delivery): 99.3% of commits met no lock, ~0.6% waited 1.0-1.25 ms. Retrying at once on the next loop
turns instead (spinning for up to 2 ms) was worse: 981-1,087 against 1,297-1,311 req/s, p99 2.5-2.6
against 2.1-2.2 ms."""
BUSY_RETRY_MAX: Final = 0.002
BUSY_WINDOW: Final = 0.001
"""Seconds a group opened while the serving loop had other work ready stays open for more rows (1 ms
asked, ~1-2 ms in effect: asyncio's epoll timeouts are whole milliseconds); see the module docstring."""
REOPEN_INTERVAL: Final = 1.0
"""Seconds between two tries to open an outbox file that could not be opened (or created)."""
COUNT_INTERVAL: Final = 1.0
WAL_CHECKPOINT_BYTES: Final = 64 * 1024 * 1024
"""WAL size past which :meth:`Outbox.refresh` checkpoints (off the loop) because the sender has not."""
"""Seconds between two counts of the waiting rows (the sender deletes what it delivered)."""
_LOG_INTERVAL: Final = 60.0

_Pending = tuple[int, str | None, str | None, bytes]


@dataclass(slots=True)
class OutboxState:
    """The pipeline as the serving process sees it (GetStatus ``outbox``): the file's contents at the last
    :meth:`Outbox.refresh`, what this process stored and dropped, and the sender's state (set by whoever
    supervises the sender)."""

    stored: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    storage_error: str = ""
    file: StoreStats | None = None
    sender_state: str = "stopped"
    sender_restarts: int = 0
    sender_pid: int = 0
    sender_error: str = ""
    delivered: int = 0


class Outbox:
    """The outbox file of this process, written with group commit; see the module docstring.

    ``path`` is the claimed file (``claim_outbox_path``; ``lock_fd`` its lock, released by :meth:`close`).
    A file that is not a readable outbox is moved aside and replaced (``store.open_or_replace``); when no
    file can be opened or created at all (a full disk at start), the outbox works without one — every
    group dropped (``storage_error``), degraded — and tries again every REOPEN_INTERVAL seconds. Never
    raises for storage failures."""

    def __init__(
        self,
        path: Path,
        *,
        max_rows: int = 100000,
        commit_window: float = 0.0,
        commit_rows: int = 256,
        lock_fd: int | None = None,
    ) -> None:
        self.path = path
        self._store: OutboxStore | None = None
        self._opened_try = 0.0
        self._max_rows = max(1, max_rows)
        self._window = max(0.0, commit_window)
        self.wal_checkpoint_bytes = WAL_CHECKPOINT_BYTES
        """WAL size past which :meth:`refresh` checkpoints (an attribute, not only the constant: this module
        is compiled, tools/compile.py, so a test sets it here rather than patching the module)."""
        self._commit_rows = max(1, commit_rows)
        self._lock_fd = lock_fd
        self.state = OutboxState()
        self._backlog = 0
        self._counted_at = time.monotonic()
        self._rows: list[_Pending] = []
        self._future: asyncio.Future[bool] | None = None
        self._opened_at = 0.0
        self._busy_tries = 0  # failed tries of the open group (the sender held the write lock)
        self._scheduled: asyncio.Handle | None = None
        self._hot = False  # a group was committed at once in this turn of the loop (see enqueue)
        self._logged: dict[str, float] = {}
        self._closed = False
        self._reader: OutboxStore | None = None  # refresh()'s own connection, used off the loop
        if self._open() and self._backlog:
            log.info("outbox: %d rows from a previous run wait in %s", self._backlog, path)

    def _open(self) -> bool:
        """Open (or create) the file; on failure (the disk full at start, ...) the outbox runs without it,
        dropping what it is given (counted) and trying again every REOPEN_INTERVAL seconds."""
        self._opened_try = time.monotonic()
        try:
            self._store = open_or_replace(self.path, busy_timeout_s=0.0)
            self._backlog = self._store.count()
        except (sqlite3.Error, OSError) as exc:
            if self._store is not None:
                self._store.close()
                self._store = None
            self.state.storage_error = f"storage_error: cannot open {self.path}: {exc}"
            OUTBOX_DEGRADED.set(1)
            log.error("outbox: cannot open %s (%s); notifications are dropped until it can", self.path, exc)
            return False
        self._counted_at = time.monotonic()
        OUTBOX_BACKLOG.set(self._backlog)
        return True

    # ------------------------------------------------------------------------------------ producer

    def enqueue(
        self, request: delivery_pb2.DeliveryRequest, *, session_id: str | None, cluster: str | None
    ) -> asyncio.Future[bool]:
        """Add ``request`` to the open group; returns the group's future (True: committed, False: dropped,
        counted). Await it through ``asyncio.shield`` (it is shared by the calls of the group)."""
        loop = asyncio.get_running_loop()
        if self._backlog + len(self._rows) >= self._max_rows:
            if time.monotonic() - self._counted_at >= COUNT_INTERVAL:
                self._recount()
            if self._backlog + len(self._rows) >= self._max_rows:
                self._drop("outbox_full", 1, f"{self._max_rows} rows wait in {self.path}")
                done: asyncio.Future[bool] = loop.create_future()
                done.set_result(False)
                return done
        future = self._future
        if future is None:
            future = self._future = loop.create_future()
            self._opened_at = time.monotonic()
        self._rows.append((now_ms(), session_id, cluster, request.SerializeToString()))
        if len(self._rows) >= self._commit_rows:
            self._commit()
        elif not self._window and not self._hot and not _has_ready_work(loop):
            # A lone call (nothing else ready on the loop) is committed at once: no call waits to share
            # it, and the caller's await then costs no extra turn of the loop. The calls later in this
            # turn share the group committed at its end.
            self._hot = True
            loop.call_soon(self._cool)
            self._commit()
        elif self._scheduled is None:
            if self._window:
                self._scheduled = loop.call_later(self._window, self._commit)
            elif self._hot:
                self._scheduled = loop.call_soon(self._commit)
            else:  # other calls are in flight: the rows of the next BUSY_WINDOW share one transaction
                self._scheduled = loop.call_later(BUSY_WINDOW, self._commit)
        return future

    def _cool(self) -> None:
        self._hot = False

    def _commit(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        rows, future = self._rows, self._future
        if not rows or future is None:
            return
        store = self._store
        if store is None and not self._closed:
            if time.monotonic() - self._opened_try < REOPEN_INTERVAL or not self._open():
                self._rows, self._future = [], None
                self._drop("storage_error", len(rows), f"{self.path} cannot be opened")
                _resolve(future, False)
                return
            store = self._store
        try:
            if self._closed or store is None:
                self._insert_late(rows)
            else:
                store.insert(rows)
        except sqlite3.Error as exc:
            if "locked" in str(exc) and time.monotonic() - self._opened_at < COMMIT_TIMEOUT:
                # the sender holds the write lock for a moment: keep the group open, try again shortly
                delay = min(BUSY_RETRY_MAX, BUSY_RETRY * (1 << min(self._busy_tries, 4)))
                self._busy_tries += 1
                self._scheduled = asyncio.get_running_loop().call_later(delay, self._commit)
                return
            self._busy_tries = 0
            self._rows, self._future = [], None
            reason = "disk_full" if is_disk_full(exc) else "storage_busy" if "locked" in str(exc) else None
            self._drop(reason or "storage_error", len(rows), str(exc))
            _resolve(future, False)
            return
        self._rows, self._future = [], None
        self._busy_tries = 0
        self._backlog += len(rows)
        self.state.stored += len(rows)
        self.state.storage_error = ""
        OUTBOX_STORED.inc(len(rows))
        if time.monotonic() - self._counted_at >= COUNT_INTERVAL:
            self._recount()
        _resolve(future, True)

    def _insert_late(self, rows: list[_Pending]) -> None:
        """A call still in flight after :meth:`close`: stored through a connection of its own."""
        late = OutboxStore.open(self.path, busy_timeout_s=5.0)
        try:
            late.insert(rows)
        finally:
            late.close()

    def _recount(self) -> None:
        try:
            if self._store is not None:
                self._backlog = self._store.count()
        except sqlite3.Error as exc:
            log.debug("outbox: cannot count the rows: %s", exc)
        self._counted_at = time.monotonic()
        OUTBOX_BACKLOG.set(self._backlog)

    def _drop(self, reason: str, count: int, detail: str) -> None:
        self.state.dropped[reason] = self.state.dropped.get(reason, 0) + count
        self.state.storage_error = f"{reason}: {detail}"
        outbox_dropped(reason).inc(count)
        OUTBOX_DEGRADED.set(1)
        now = time.monotonic()
        if now - self._logged.get(reason, -_LOG_INTERVAL) >= _LOG_INTERVAL:
            self._logged[reason] = now
            log.warning(
                "outbox: notifications not stored (%s: %s); decisions are still served; %d dropped for "
                "this reason so far",
                reason,
                detail,
                self.state.dropped[reason],
            )

    # ------------------------------------------------------------------------------------ state

    async def refresh(self) -> OutboxState:
        """Read the file's contents (backlog, oldest row, quarantine, sizes) off the loop, update the
        ``targetd_outbox_*`` gauges and return the state. Storage errors are logged, not raised."""
        try:
            if self._reader is None:
                self._reader = await asyncio.to_thread(OutboxStore.open, self.path)
            stats = await asyncio.to_thread(self._reader.stats, count_due=False)
            if stats.wal_bytes > self.wal_checkpoint_bytes:
                # The sender checkpoints every second or 1,000 rows; a WAL this large means it has not lately
                # (it is down or restarting): checkpoint here, off the loop, never on a commit.
                await asyncio.to_thread(self._reader.checkpoint, give_back=False)
        except sqlite3.Error as exc:
            log.debug("outbox: cannot read the outbox stats: %s", exc)
            return self.state
        self.state.file = stats
        OUTBOX_BACKLOG.set(stats.backlog)
        OUTBOX_QUARANTINED.set(stats.quarantined)
        OUTBOX_OLDEST_AGE.set(_oldest_age_ms(stats) / 1000)
        OUTBOX_DEGRADED.set(1 if self.degraded_reason() else 0)
        return self.state

    def degraded_reason(self) -> str:
        """Why the pipeline is degraded now ("" when it is not): a storage failure since the last good
        commit, or a sender that is not running."""
        if self.state.storage_error:
            return self.state.storage_error
        if self.state.sender_state != "running":
            detail = f": {self.state.sender_error}" if self.state.sender_error else ""
            return f"sender {self.state.sender_state}{detail}"
        return ""

    def fill_status(self, status: decisioning_service_pb2.OutboxStatus) -> None:
        """Fill a ``targetd.v1.OutboxStatus`` message from the last :meth:`refresh`."""
        state = self.state
        stats = state.file
        reason = self.degraded_reason()
        status.degraded = bool(reason)
        status.reason = reason
        status.stored = state.stored
        for key, value in state.dropped.items():
            status.dropped[key] = value
        status.sender_state = state.sender_state
        status.sender_restarts = state.sender_restarts
        status.sender_pid = state.sender_pid
        status.delivered = state.delivered
        if stats is not None:
            status.backlog = stats.backlog
            status.oldest_age_ms = _oldest_age_ms(stats)
            status.quarantined = stats.quarantined
            status.file_bytes = stats.file_bytes
            status.wal_bytes = stats.wal_bytes

    # ------------------------------------------------------------------------------------ lifecycle

    def flush(self) -> None:
        """Commit the open group now (shutdown)."""
        self._commit()

    def close(self) -> None:
        """Commit the open group, close the connection and release the file's claim. Rows enqueued later
        (calls still in flight) are stored through a connection of their own. Safe to call more than
        once."""
        if self._closed:
            return
        self._commit()
        self._closed = True
        if self._backlog:
            log.info("outbox: about %d rows kept in %s for the next start", self._backlog, self.path)
        if self._store is not None:
            self._store.close()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _has_ready_work(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether other callbacks are ready to run on ``loop`` (in this turn or the next): asyncio's
    ``BaseEventLoop._ready``, which no public API exposes. A loop without it (uvloop) counts as idle, so
    that its rows are committed at once, as before the busy window."""
    return bool(getattr(loop, "_ready", None))


def _resolve(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


def _oldest_age_ms(stats: StoreStats) -> int:
    return max(0, now_ms() - stats.oldest_created_ms) if stats.oldest_created_ms is not None else 0
