"""The outbox file's schema and its moves: creating the current schema (``PRAGMA user_version``
2), migrating a file of the previous one, moving the rows of an orphaned file into this one, and moving a
file that is not an outbox aside; and the one write transaction every multi-statement write uses
(:func:`write_transaction`). Used by :mod:`.store` only; see its docstring for the schema.

Thread affinity: the functions use the connection they are given, from its thread.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

__all__ = [
    "JOURNAL_SIZE_LIMIT",
    "SCHEMA_VERSION",
    "ensure_schema",
    "move_aside",
    "move_rows",
    "write_transaction",
]

SCHEMA_VERSION: Final = 2
JOURNAL_SIZE_LIMIT: Final = 16 * 1024 * 1024
"""Bytes the WAL file is truncated back to after a checkpoint resets it. Above what is written between two
of the sender's checkpoints (one a second, or one per 1,000 rows claimed: ~12 KB per one-row commit,
~12 MB), so that the
restarted WAL overwrites blocks the file already has instead of the file system allocating them again
every second: a one-row commit cost 11% less CPU than with a 1 MB limit (median of 5 pairs of 5,000
commits at 900/s: 80.2-95.3 against 92.6-98.2 µs). The WAL at rest is at most this size."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    due_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    session_id TEXT,
    cluster TEXT,
    last_error TEXT,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (due_ms, id);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    quarantined_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    session_id TEXT,
    cluster TEXT,
    reason TEXT NOT NULL,
    payload BLOB NOT NULL
);
"""
_COLUMNS: Final = "created_ms, due_ms, attempts, session_id, cluster, last_error, payload"
_QUARANTINE: Final = "created_ms, quarantined_ms, attempts, session_id, cluster, reason, payload"


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """The writes of the block as one transaction on ``conn`` (autocommit mode): ``BEGIN IMMEDIATE`` …
    ``COMMIT``, rolled back when the block or the commit raises; inside a transaction already open, the
    block joins it. SQLite's write lock is taken once for the block, not once per statement."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def move_rows(conn: sqlite3.Connection, other: Path) -> int:
    conn.execute("ATTACH DATABASE ? AS orphan", (str(other),))
    try:
        waiting = int(conn.execute("SELECT COUNT(*) FROM orphan.outbox").fetchone()[0])
        quarantined = int(conn.execute("SELECT COUNT(*) FROM orphan.quarantine").fetchone()[0])
        if waiting or quarantined:
            with write_transaction(conn):
                conn.execute(
                    f"INSERT INTO main.outbox ({_COLUMNS}) SELECT {_COLUMNS} FROM orphan.outbox ORDER BY id"
                )
                conn.execute(
                    f"INSERT INTO main.quarantine ({_QUARANTINE}) "
                    f"SELECT {_QUARANTINE} FROM orphan.quarantine ORDER BY id"
                )
                conn.execute("DELETE FROM orphan.outbox")
                conn.execute("DELETE FROM orphan.quarantine")
        return waiting + quarantined
    finally:
        conn.execute("DETACH DATABASE orphan")


def ensure_schema(conn: sqlite3.Connection, schema: str = "main") -> None:
    """Create the current schema in ``schema`` (an attached database too), migrating the previous one."""
    version = int(conn.execute(f"PRAGMA {schema}.user_version").fetchone()[0])
    if version == SCHEMA_VERSION:
        conn.execute(f"DROP INDEX IF EXISTS {schema}.outbox_created")  # (briefly in v2: a page a commit)
        return
    tables = {name for (name,) in conn.execute(f"SELECT name FROM {schema}.sqlite_master WHERE type='table'")}
    with write_transaction(conn):
        if "outbox" in tables and version < SCHEMA_VERSION:
            conn.execute(f"ALTER TABLE {schema}.outbox RENAME TO outbox_v1")
            conn.execute(f"DROP INDEX IF EXISTS {schema}.outbox_live")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement.replace("EXISTS ", f"EXISTS {schema}.", 1))
        if "outbox" in tables and version < SCHEMA_VERSION:
            _migrate_v1(conn, schema)
        conn.execute(f"PRAGMA {schema}.user_version={SCHEMA_VERSION}")


def _migrate_v1(conn: sqlite3.Connection, schema: str) -> None:
    at = time.time_ns() // 1_000_000
    conn.execute(
        f"INSERT INTO {schema}.outbox ({_COLUMNS}) "
        "SELECT created_ns / 1000000, created_ns / 1000000, attempts, session_id, cluster, last_error, "
        f"payload FROM {schema}.outbox_v1 WHERE dead = 0 ORDER BY id"
    )
    conn.execute(
        f"INSERT INTO {schema}.quarantine "
        "(created_ms, quarantined_ms, attempts, session_id, cluster, reason, payload) "
        f"SELECT created_ns / 1000000, ?, attempts, session_id, cluster, "
        "COALESCE(last_error, 'rejected by the Delivery API'), payload "
        f"FROM {schema}.outbox_v1 WHERE dead = 1",
        (at,),
    )
    conn.execute(f"DROP TABLE {schema}.outbox_v1")


def move_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, Path(f"{aside}{suffix}"))
    return aside
