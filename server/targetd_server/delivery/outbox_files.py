"""The files of the outbox under ``data_dir``: one per live process, claimed with ``flock``, and the
adoption of the rows of files whose process is gone.

Thread affinity: :func:`claim_outbox_path` anywhere; :func:`adopt_orphans` from the outbox's sender thread.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Final

from targetd_server.errors import OverloadedError

log = logging.getLogger("targetd.outbox")

__all__ = ["MAX_SLOTS", "adopt_orphans", "claim_outbox_path"]

_COLUMNS: Final = "created_ns, session_id, cluster, telemetry_only, attempts, dead, last_error, payload"


def _try_lock(path: Path) -> int | None:
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


MAX_SLOTS: Final = 64


def claim_outbox_path(directory: Path) -> tuple[Path, int]:
    """An outbox file under ``directory`` that no other live process uses: ``outbox.sqlite3``, else
    ``outbox-1.sqlite3``, ... Each is claimed with an exclusive ``flock`` on its ``.lock`` file, held until
    the returned descriptor is closed (the process dies: the lock goes with it). So several workers sharing
    one ``data_dir`` (SO_REUSEPORT) never send the same rows, and a restarted worker adopts the file of a
    dead one. Raises :class:`OverloadedError` when all slots are taken."""
    directory.mkdir(parents=True, exist_ok=True)
    for slot in range(MAX_SLOTS):
        name = "outbox.sqlite3" if slot == 0 else f"outbox-{slot}.sqlite3"
        fd = _try_lock(directory / name)
        if fd is not None:
            return directory / name, fd
    raise OverloadedError(f"all {MAX_SLOTS} outbox files in {directory} are in use; use another data_dir")


def adopt_orphans(conn: sqlite3.Connection, own: Path, lock: threading.Lock) -> tuple[int, int]:
    """Move the rows of every other outbox file beside ``own`` that no live process holds into ``own``
    (through ``conn``, under ``lock``); returns (live, dead) rows moved. Not atomic across the two files
    (WAL): a crash in between can only duplicate rows, which the at-least-once rule allows."""
    moved_live = moved_dead = 0
    for other in sorted(own.parent.glob("outbox*.sqlite3")):
        if other == own:
            continue
        fd = _try_lock(other)
        if fd is None:
            continue
        try:
            with lock:
                live, dead = _move_rows(conn, other)
        except sqlite3.Error as exc:
            log.warning("outbox: cannot adopt the rows of %s: %s", other, exc)
            continue
        finally:
            os.close(fd)
        if live or dead:
            log.info("outbox: adopted %d rows of %s (its process is gone)", live + dead, other)
        moved_live += live
        moved_dead += dead
    return moved_live, moved_dead


def _move_rows(conn: sqlite3.Connection, other: Path) -> tuple[int, int]:
    conn.execute("ATTACH DATABASE ? AS orphan", (str(other),))
    try:
        tables = conn.execute("SELECT COUNT(*) FROM orphan.sqlite_master WHERE name = 'outbox'")
        if not tables.fetchone()[0]:
            return 0, 0
        live, dead = conn.execute(
            "SELECT COALESCE(SUM(dead = 0), 0), COALESCE(SUM(dead = 1), 0) FROM orphan.outbox"
        ).fetchone()
        if live or dead:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                f"INSERT INTO main.outbox ({_COLUMNS}) SELECT {_COLUMNS} FROM orphan.outbox ORDER BY id"
            )
            conn.execute("DELETE FROM orphan.outbox")
            conn.execute("COMMIT")
        return int(live), int(dead)
    finally:
        conn.execute("DETACH DATABASE orphan")
