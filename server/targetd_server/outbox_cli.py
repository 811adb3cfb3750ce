"""``targetd outbox stats|list|requeue --data-dir DIR``: look into the notification outboxes of a data
directory (one file per worker: ``outbox.sqlite3``, ``outbox-1.sqlite3``, ...) and re-queue quarantined
rows, with or without a running targetd (SQLite's locking makes both safe; a running sender picks a
re-queued row up at its next claim).

* ``stats``: per file, rows waiting (and due now), the oldest row's age, rows in quarantine, file sizes.
* ``list``: the quarantined rows (id, age, attempts, reason, size), oldest first, ``--limit`` per file.
* ``requeue``: ``--all`` (every file, or ``--file``), or ``--id N ...`` of one file (``--file``, default
  ``outbox.sqlite3``): back to the outbox, due now, attempts reset. A row the Delivery API still refuses
  comes back to quarantine.

``--json`` prints one JSON object per line instead of text. Exit status: 0 done, 1 nothing matched (no
outbox file, an id not in quarantine), 2 a usage error. Thread affinity: the command's one thread.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any, TextIO

from targetd_server.delivery import OutboxStore, now_ms

__all__ = ["add_outbox_arguments", "run_outbox"]


def add_outbox_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``targetd outbox`` subcommands and their options."""
    actions = parser.add_subparsers(dest="outbox_command", required=True)
    for name, text in (
        ("stats", "what each outbox file holds"),
        ("list", "the quarantined rows"),
        ("requeue", "send quarantined rows again"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("--data-dir", default=".targetd-data", help="targetd's data_dir")
        action.add_argument("--file", help="one outbox file of the data dir (e.g. outbox-1.sqlite3)")
        action.add_argument("--json", action="store_true", help="one JSON object per line")
        if name == "list":
            action.add_argument("--limit", type=int, default=100, help="rows listed per file")
        if name == "requeue":
            which = action.add_mutually_exclusive_group(required=True)
            which.add_argument("--all", action="store_true", help="every quarantined row")
            which.add_argument("--id", type=int, nargs="+", dest="ids", help="these quarantined rows")


def _files(args: argparse.Namespace) -> list[Path]:
    directory = Path(args.data_dir)
    if args.file:
        return [directory / args.file] if (directory / args.file).is_file() else []
    if args.outbox_command == "requeue" and args.ids:
        path = directory / "outbox.sqlite3"
        return [path] if path.is_file() else []
    return sorted(directory.glob("outbox*.sqlite3"))


def _emit(out: TextIO, as_json: bool, record: dict[str, Any], text: str) -> None:
    print(json.dumps(record, separators=(",", ":")) if as_json else text, file=out)


def run_outbox(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the parsed ``targetd outbox ...`` command, printing to ``out`` (default stdout); returns the exit
    status. Storage errors are printed (exit 1), never raised."""
    out = out if out is not None else sys.stdout
    files = _files(args)
    if not files:
        print(f"targetd outbox: no outbox file in {args.data_dir}", file=sys.stderr)
        return 1
    status = 0
    for path in files:
        try:
            store = OutboxStore.open(path)
        except sqlite3.Error as exc:
            print(f"targetd outbox: {path}: {exc}", file=sys.stderr)
            status = 1
            continue
        try:
            status = max(status, _run_one(args, store, path.name, out))
        except sqlite3.Error as exc:
            print(f"targetd outbox: {path}: {exc}", file=sys.stderr)
            status = 1
        finally:
            store.close()
    return status


def _run_one(args: argparse.Namespace, store: OutboxStore, name: str, out: TextIO) -> int:
    now = now_ms()
    if args.outbox_command == "stats":
        stats = store.stats(now)
        age = (now - stats.oldest_created_ms) / 1000 if stats.oldest_created_ms is not None else 0.0
        record = {
            "file": name,
            "backlog": stats.backlog,
            "due": stats.due,
            "oldest_age_s": round(age, 3),
            "quarantined": stats.quarantined,
            "file_bytes": stats.file_bytes,
            "wal_bytes": stats.wal_bytes,
        }
        text = (
            f"{name}: {stats.backlog} waiting ({stats.due} due), oldest {age:.1f} s, "
            f"{stats.quarantined} quarantined, {stats.file_bytes + stats.wal_bytes} bytes"
        )
        _emit(out, args.json, record, text)
        return 0
    if args.outbox_command == "list":
        for row in store.list_quarantine(args.limit):
            record = {
                "file": name,
                "id": row.id,
                "age_s": round((now - row.created_ms) / 1000, 3),
                "quarantined_age_s": round((now - row.quarantined_ms) / 1000, 3),
                "attempts": row.attempts,
                "session_id": row.session_id,
                "cluster": row.cluster,
                "bytes": row.size,
                "reason": row.reason,
            }
            text = f"{name} #{row.id}: {row.attempts} attempts, {row.size} bytes: {row.reason}"
            _emit(out, args.json, record, text)
        return 0
    moved = store.requeue(None if args.all else args.ids, now_ms=now)
    _emit(out, args.json, {"file": name, "requeued": moved}, f"{name}: {moved} rows re-queued")
    if args.ids and moved < len(set(args.ids)):
        print(
            f"targetd outbox: {len(set(args.ids)) - moved} of the ids are not in quarantine", file=sys.stderr
        )
        return 1
    return 0
