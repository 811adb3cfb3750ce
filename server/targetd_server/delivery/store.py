"""The durable outbox store: one SQLite file of rows waiting for the Delivery API, and a quarantine of the
rows that cannot be sent. Both processes of the pipeline use it: the serving process writes
(:meth:`OutboxStore.insert`, group commit: see ``delivery/outbox.py``), the sender process claims, acks,
retries and quarantines. Nothing here sends anything.

Sender-side API (any process; one :class:`OutboxStore` per thread)::

    store = OutboxStore.open(path)                    # the file the serving process created
    rows = store.claim(limit, now_ms)                 # due rows, oldest due first, leased for lease_ms
    store.ack([row.id, ...])                          # delivered: deleted
    store.retry([row.id, ...], next_at_ms, error)     # attempts + 1, due again at next_at_ms
    store.quarantine([row.id, ...], reason)           # moved to the quarantine table (never deleted)
    store.stats(now_ms)                               # backlog, oldest row, quarantine, file sizes
    store.checkpoint()                                # WAL checkpoint + give free pages back (periodic)
    store.adopt_orphans()                             # take over the rows of dead processes' files
    store.close()

A claimed row is *leased*, not removed: its ``due_ms`` moves to ``now_ms + lease_ms``. A sender killed
mid-send leaves leased rows that become due again when the lease runs out, so they are claimed again
(at-least-once). ``Row.request`` is the serialised ``DeliveryRequest`` as stored: decoding it is the
sender's job, and a row that does not decode (or cannot become Delivery API JSON) goes to
:meth:`quarantine` with the reason, never back to the head of the queue.

Schema (``PRAGMA user_version`` 2): ``outbox(id, created_ms, due_ms, attempts, session_id, cluster,
last_error, payload)`` indexed on ``(due_ms, id)``; ``quarantine(id, created_ms,
quarantined_ms, attempts, session_id, cluster, reason, payload)``. Files of the previous schema
(``outbox`` with ``dead``) are migrated on open: live rows kept, dead rows quarantined. WAL,
``synchronous=NORMAL`` (a commit survives a SIGKILL, an OS crash may lose the last ones),
``auto_vacuum=INCREMENTAL`` and ``journal_size_limit`` so that :meth:`checkpoint` keeps both files near
the size of what they hold. ``outbox.id`` is SQLite's rowid: unique among the rows waiting (a claimed row
keeps it until acked), but the id of the newest row may be given again once that row is gone; quarantined
rows get ids of their own (those :meth:`requeue` and ``targetd outbox`` take). No AUTOINCREMENT and no
index beyond ``(due_ms, id)``: a one-row commit writes ~2 pages to the WAL, not 4.

A file that is not a readable outbox at start (garbage, a failed integrity check) is moved aside by
:func:`open_or_replace` — renamed ``<name>.corrupt-<UTC timestamp>`` with its ``-wal``/``-shm`` — and a
fresh one created, so the service starts.

Thread affinity: an :class:`OutboxStore` is used from one thread at a time (its sqlite3 connection).
Raises ``sqlite3.Error`` subclasses on storage failures (see :func:`is_disk_full`).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final, NamedTuple

from targetd_server.delivery.outbox_files import orphan_files
from targetd_server.delivery.store_schema import (
    JOURNAL_SIZE_LIMIT,
    ensure_schema,
    move_aside,
    move_rows,
    write_transaction,
)

log = logging.getLogger("targetd.outbox")

__all__ = [
    "DEFAULT_LEASE_MS",
    "OutboxStore",
    "QuarantinedRow",
    "Row",
    "StoreStats",
    "is_disk_full",
    "now_ms",
    "open_or_replace",
]

DEFAULT_LEASE_MS: Final = 30_000
"""How long a claimed row stays with its sender before it is due again (the sender died)."""
VACUUM_FREE_PAGES: Final = 256
"""Free pages beyond which :meth:`OutboxStore.checkpoint` gives space back to the file system."""
REASON_CHARS: Final = 500

MAX_INSERT_ROWS: Final = 256
"""Rows of one INSERT statement (a group of more is several statements in one transaction)."""
_INSERT_HEAD: Final = "INSERT INTO outbox (created_ms, due_ms, session_id, cluster, payload) VALUES "


@lru_cache(maxsize=MAX_INSERT_ROWS)
def _insert_sql(rows: int) -> str:
    """The INSERT of ``rows`` rows (one statement: one implicit transaction in autocommit mode)."""
    return _INSERT_HEAD + ",".join(["(?, ?, ?, ?, ?)"] * rows)


_IDS: Final = "SELECT value FROM json_each(?)"


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch (rows carry wall time: it survives restarts)."""
    return time.time_ns() // 1_000_000


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database or disk is full" (SQLITE_FULL), as opposed to any other
    storage failure."""
    return isinstance(exc, sqlite3.Error) and (
        getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
    )


class Row(NamedTuple):
    """A claimed outbox row: ``request`` is the serialised ``DeliveryRequest``; ``first_at_ms`` when it
    was stored (epoch ms; the age limits count from it); ``attempts`` failed sends so far."""

    id: int
    request: bytes
    session_id: str | None
    cluster: str | None
    attempts: int
    first_at_ms: int


@dataclass(frozen=True, slots=True)
class QuarantinedRow:
    """A row of the quarantine table (as listed by ``targetd outbox list``)."""

    id: int
    created_ms: int
    quarantined_ms: int
    attempts: int
    session_id: str | None
    cluster: str | None
    reason: str
    size: int


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What the file holds now: rows waiting (``backlog``, of which ``due`` can be claimed now; -1: not
    counted), the
    oldest waiting row's ``created_ms`` (None: no row), the quarantine, and the bytes of the database and
    WAL files."""

    backlog: int
    due: int
    oldest_created_ms: int | None
    quarantined: int
    file_bytes: int
    wal_bytes: int


def _connect(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout_s,
        isolation_level=None,
        check_same_thread=False,
        cached_statements=MAX_INSERT_ROWS + 32,  # (the INSERT of each group size, and the rest)
    )
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # (takes effect on a new file only: before WAL, tables)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
    return conn


def _ids_json(ids: Iterable[int]) -> str:
    return "[" + ",".join(str(int(i)) for i in ids) + "]"


class OutboxStore:
    """One connection to an outbox file; see the module docstring. Create with :meth:`open`."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @classmethod
    def open(
        cls, path: Path, *, busy_timeout_s: float = 5.0, autocheckpoint_pages: int = 1000
    ) -> OutboxStore:
        """Open (creating if need be) the outbox at ``path`` with the current schema, migrating a file of
        the previous one. ``busy_timeout_s``: how long a write waits for another writer (0: fail at once
        with ``sqlite3.OperationalError`` "database is locked"). ``autocheckpoint_pages``: WAL pages after
        which a commit checkpoints (0: never; the sender checkpoints). Raises ``sqlite3.DatabaseError`` when
        the file is not an outbox (see :func:`open_or_replace`)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(path, busy_timeout_s)
        try:
            ensure_schema(conn)
            conn.execute(f"PRAGMA wal_autocheckpoint={max(0, autocheckpoint_pages)}")
        except BaseException:
            conn.close()
            raise
        return cls(path, conn)

    def close(self) -> None:
        """Close the connection. Safe to call more than once."""
        self._conn.close()

    # ------------------------------------------------------------------------------------ writer

    def insert(self, rows: Sequence[tuple[int, str | None, str | None, bytes]]) -> None:
        """Store ``rows`` of ``(created_ms, session_id, cluster, payload)`` in one transaction (all or
        none). Raises ``sqlite3.OperationalError`` (locked: another writer; disk full: see
        :func:`is_disk_full`) and leaves nothing behind when it does."""
        conn = self._conn
        if len(rows) <= MAX_INSERT_ROWS:  # one statement: its own transaction, no BEGIN/COMMIT round trips
            conn.execute(_insert_sql(len(rows)), [v for r in rows for v in (r[0], r[0], r[1], r[2], r[3])])
            return
        with write_transaction(conn):
            for start in range(0, len(rows), MAX_INSERT_ROWS):
                chunk = rows[start : start + MAX_INSERT_ROWS]
                values = [v for r in chunk for v in (r[0], r[0], r[1], r[2], r[3])]
                conn.execute(_insert_sql(len(chunk)), values)

    def count(self) -> int:
        """Rows waiting (claimed or not); O(rows) but index-only."""
        return int(self._conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    # ------------------------------------------------------------------------------------ sender

    def claim(self, limit: int, now_ms: int, *, lease_ms: int = DEFAULT_LEASE_MS) -> list[Row]:
        """Up to ``limit`` rows due at ``now_ms`` (epoch ms), oldest due first, leased to the caller until
        ``now_ms + lease_ms`` (then due again unless acked, retried or quarantined). One transaction."""
        cursor = self._conn.execute(
            "UPDATE outbox SET due_ms = ? WHERE id IN "
            "(SELECT id FROM outbox WHERE due_ms <= ? ORDER BY due_ms, id LIMIT ?) "
            "RETURNING id, payload, session_id, cluster, attempts, created_ms",
            (now_ms + lease_ms, now_ms, max(0, limit)),
        )
        rows = [Row(*values) for values in cursor.fetchall()]
        rows.sort(key=lambda row: row.id)
        return rows

    def ack(self, ids: Iterable[int]) -> int:
        """Delete the rows ``ids`` (delivered); returns how many were there."""
        cursor = self._conn.execute(f"DELETE FROM outbox WHERE id IN ({_IDS})", (_ids_json(ids),))
        return cursor.rowcount

    def retry(self, ids: Iterable[int], next_at_ms: int, error: str | None) -> int:
        """Count a failed attempt of the rows ``ids`` and make them due again at ``next_at_ms``;
        ``error`` None: not an attempt (the row was not sent: its host's circuit is open), only due
        later."""
        cursor = self._conn.execute(
            "UPDATE outbox SET attempts = attempts + ?, due_ms = ?, last_error = COALESCE(?, last_error) "
            f"WHERE id IN ({_IDS})",
            (0 if error is None else 1, next_at_ms, error and error[:REASON_CHARS], _ids_json(ids)),
        )
        return cursor.rowcount

    def quarantine(self, ids: Iterable[int], reason: str, *, now_ms: int | None = None) -> int:
        """Move the rows ``ids`` to the quarantine table with ``reason`` (one transaction); they are never
        claimed again until :meth:`requeue`. Returns how many moved."""
        ids_json = _ids_json(ids)
        at = now_ms if now_ms is not None else _now_ms()
        conn = self._conn
        with self.transaction():
            conn.execute(
                "INSERT INTO quarantine "
                "(created_ms, quarantined_ms, attempts, session_id, cluster, reason, payload) "
                f"SELECT created_ms, ?, attempts, session_id, cluster, ?, payload FROM outbox "
                f"WHERE id IN ({_IDS})",
                (at, reason[:REASON_CHARS], ids_json),
            )
            return conn.execute(f"DELETE FROM outbox WHERE id IN ({_IDS})", (ids_json,)).rowcount

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """The writes of the block as one transaction (see :func:`write_transaction`): SQLite's write lock
        taken once for the block; inside one already open, the block joins it."""
        return write_transaction(self._conn)

    # ------------------------------------------------------------------------------------ quarantine

    def list_quarantine(self, limit: int = 100) -> list[QuarantinedRow]:
        """The quarantined rows, oldest first, at most ``limit``."""
        cursor = self._conn.execute(
            "SELECT id, created_ms, quarantined_ms, attempts, session_id, cluster, reason, length(payload) "
            "FROM quarantine ORDER BY id LIMIT ?",
            (max(0, limit),),
        )
        return [QuarantinedRow(*values) for values in cursor.fetchall()]

    def quarantined_payload(self, row_id: int) -> bytes | None:
        """The stored request of quarantined row ``row_id`` (None: no such row)."""
        found = self._conn.execute("SELECT payload FROM quarantine WHERE id = ?", (row_id,)).fetchone()
        return bytes(found[0]) if found is not None else None

    def requeue(self, ids: Iterable[int] | None = None, *, now_ms: int | None = None) -> int:
        """Move quarantined rows (``ids``, or all of them) back to the outbox, due now with no attempts
        counted. Returns how many moved."""
        at = now_ms if now_ms is not None else _now_ms()
        where, params = ("", ()) if ids is None else (f" WHERE id IN ({_IDS})", (_ids_json(ids),))
        conn = self._conn
        with self.transaction():
            conn.execute(
                "INSERT INTO outbox (created_ms, due_ms, attempts, session_id, cluster, last_error, payload) "
                f"SELECT created_ms, ?, 0, session_id, cluster, reason, payload FROM quarantine{where} "
                "ORDER BY id",
                (at, *params),
            )
            return conn.execute(f"DELETE FROM quarantine{where}", params).rowcount

    # ------------------------------------------------------------------------------------ upkeep

    def stats(self, now_ms: int | None = None, *, count_due: bool = True) -> StoreStats:
        """What the file holds now: index-only queries, ~1 ms per 100,000 rows, plus ~15 ms per 100,000
        due rows for ``due`` (``count_due=False``: ``due`` is -1)."""
        at = now_ms if now_ms is not None else _now_ms()
        conn = self._conn
        backlog = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        # the first row stored (one b-tree step; a re-queued or adopted row counts from when it came back)
        first = conn.execute("SELECT created_ms FROM outbox ORDER BY id LIMIT 1").fetchone()
        oldest = first[0] if first is not None else None
        due = -1
        if count_due:
            due = conn.execute("SELECT COUNT(*) FROM outbox WHERE due_ms <= ?", (at,)).fetchone()[0]
        quarantined = conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]
        return StoreStats(
            backlog=int(backlog),
            due=int(due),
            oldest_created_ms=int(oldest) if oldest is not None else None,
            quarantined=int(quarantined),
            file_bytes=_size(self.path),
            wal_bytes=_size(Path(f"{self.path}-wal")),
        )

    def checkpoint(self, *, give_back: bool = True) -> bool:
        """Copy the WAL into the database and have the next write start the WAL over (its blocks reused:
        the file stays at ``JOURNAL_SIZE_LIMIT`` at most), and, with ``give_back``, give free pages back
        to the file system once there are more than ``VACUUM_FREE_PAGES`` (a write transaction: the
        sender's job, not the serving process's). Returns whether the WAL will start over.

        Two steps. PASSIVE copies what the WAL holds without waiting for, or blocking, the serving
        process's commits (the long part: the pages, two syncs). But a commit made meanwhile leaves the
        WAL not wholly copied, and then no write restarts it: at c=1 one lands during nearly every
        checkpoint, and the WAL grew without end (~14 MB/s, each new block zeroed by the file system
        for the serving process's write: 7% of its CPU). So a RESTART follows that does not wait (busy
        timeout 0): it takes the write lock only if it is free at once, copies the few frames added since
        and makes sure no reader still uses the WAL; when it cannot (a commit in progress), it returns
        False and the caller tries again soon."""
        conn = self._conn
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        waits = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
        conn.execute("PRAGMA busy_timeout=0")
        try:
            busy = int(conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()[0])
        finally:
            conn.execute(f"PRAGMA busy_timeout={waits}")
        if give_back:
            free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
            if free > VACUUM_FREE_PAGES:
                conn.executescript("PRAGMA incremental_vacuum;")  # (execute() would free one page only)
        return busy == 0

    def adopt_orphans(self) -> int:
        """Move the rows (waiting and quarantined) of the outbox files beside this one whose process is
        gone into this one (a file of the previous schema is migrated first); returns the rows moved. Not
        atomic across the two files (WAL): a crash in between can only duplicate rows, which the
        at-least-once rule allows. See :mod:`targetd_server.delivery.outbox_files`."""
        moved = 0
        for other, _fd in orphan_files(self.path):
            try:
                OutboxStore.open(other).close()  # the current schema (migrated if need be)
                count = move_rows(self._conn, other)
            except sqlite3.Error as exc:
                log.warning("outbox: cannot adopt the rows of %s: %s", other, exc)
                continue
            if count:
                log.info("outbox: adopted %d rows of %s (its process is gone)", count, other)
            moved += count
        return moved


def _now_ms() -> int:
    return now_ms()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def open_or_replace(path: Path, *, busy_timeout_s: float = 0.0, autocheckpoint_pages: int = 0) -> OutboxStore:
    """:meth:`OutboxStore.open` for the serving process at start: a file that is not a readable outbox
    (not a database, a failed ``quick_check``, a schema that cannot be migrated) is renamed
    ``<name>.corrupt-<UTC timestamp>`` (with its ``-wal`` and ``-shm``), logged as an error, and a fresh
    outbox created in its place. Call it only while holding the file's claim (``claim_outbox_path``).
    Raises ``sqlite3.Error`` only when even a fresh file cannot be created (e.g. the disk is full)."""
    try:
        store = OutboxStore.open(path, busy_timeout_s=5.0, autocheckpoint_pages=autocheckpoint_pages)
        try:
            verdict = store._conn.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {verdict}")
        except BaseException:
            store.close()
            raise
    except sqlite3.DatabaseError as exc:
        if is_disk_full(exc):
            raise
        aside = move_aside(path)
        log.error(
            "outbox: %s is not a readable outbox (%s); moved aside to %s, a fresh outbox is created "
            "(the rows in it are not sent; inspect or delete it)",
            path,
            exc,
            aside,
        )
        store = OutboxStore.open(path, busy_timeout_s=5.0, autocheckpoint_pages=autocheckpoint_pages)
    store._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    return store
