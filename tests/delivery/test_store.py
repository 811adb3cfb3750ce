"""The outbox store on real SQLite files: claim/lease/ack/retry, quarantine and requeue, migration of the
previous schema, a corrupt file moved aside, adoption, and the file staying near its real size."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from targetd.v1 import delivery_pb2
from targetd_server.delivery import OutboxStore, open_or_replace
from targetd_server.delivery.outbox_files import claim_outbox_path
from targetd_server.delivery.store_schema import JOURNAL_SIZE_LIMIT

T0 = 1_800_000_000_000


def _rows(count: int, start: int = 0, at: int = T0) -> list[tuple[int, str | None, str | None, bytes]]:
    return [(at, f"s-{i}", None, f"payload-{i}".encode()) for i in range(start, start + count)]


def test_claim_leases_rows_until_acked_retried_or_the_lease_runs_out(tmp_path: Path) -> None:
    store = OutboxStore.open(tmp_path / "outbox.sqlite3")
    store.insert(_rows(5))
    first = store.claim(3, T0, lease_ms=1000)
    assert [r.request for r in first] == [b"payload-0", b"payload-1", b"payload-2"]
    assert first[0].session_id == "s-0" and first[0].attempts == 0 and first[0].first_at_ms == T0
    second = store.claim(10, T0, lease_ms=1000)
    assert [r.request for r in second] == [b"payload-3", b"payload-4"]  # the leased ones are not due
    assert store.claim(10, T0 + 999) == []
    assert store.ack([first[0].id]) == 1
    assert store.retry([first[1].id], T0 + 5000, "503 Service Unavailable") == 1
    # a sender that died: the rest of its lease runs out and the rows come back, oldest due first
    again = store.claim(10, T0 + 1000)
    assert [r.request for r in again] == [b"payload-2", b"payload-3", b"payload-4"]
    later = store.claim(10, T0 + 5000)
    assert [(r.request, r.attempts) for r in later] == [(b"payload-1", 1)]
    stats = store.stats(T0 + 5000)
    assert (stats.backlog, stats.oldest_created_ms, stats.quarantined) == (4, T0, 0)
    store.close()


def test_quarantine_is_listed_never_claimed_and_requeued(tmp_path: Path) -> None:
    store = OutboxStore.open(tmp_path / "outbox.sqlite3")
    store.insert(_rows(3))
    rows = store.claim(3, T0)
    assert store.quarantine([rows[1].id], "rejected: 400 Bad Request", now_ms=T0 + 1) == 1
    store.retry([rows[0].id, rows[2].id], T0, "timeout")
    assert [r.request for r in store.claim(10, T0 + 1)] == [b"payload-0", b"payload-2"]
    listed = store.list_quarantine()
    assert [(q.reason, q.quarantined_ms, q.size) for q in listed] == [
        ("rejected: 400 Bad Request", T0 + 1, len(b"payload-1"))
    ]
    assert store.quarantined_payload(listed[0].id) == b"payload-1"  # (the quarantine's own ids)
    assert store.requeue([listed[0].id], now_ms=T0 + 2) == 1
    assert store.list_quarantine() == []
    back = store.claim(10, T0 + 2)
    assert [(r.request, r.attempts, r.first_at_ms) for r in back] == [(b"payload-1", 0, T0)]
    store.close()


def test_a_garbage_file_is_moved_aside_and_a_fresh_outbox_created(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    path.write_bytes(b"this is not a database " * 500)
    store = open_or_replace(path)
    store.insert(_rows(1))
    assert store.count() == 1
    store.close()
    aside = sorted(tmp_path.glob("outbox.sqlite3.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")


def test_a_file_of_the_previous_schema_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, created_ns INTEGER NOT NULL,
                session_id TEXT, cluster TEXT, telemetry_only INTEGER NOT NULL DEFAULT 0,
                attempts INTEGER NOT NULL DEFAULT 0, dead INTEGER NOT NULL DEFAULT 0, last_error TEXT,
                payload BLOB NOT NULL);
            CREATE INDEX outbox_live ON outbox (dead, id);
            INSERT INTO outbox (created_ns, session_id, payload) VALUES (1800000000000000000, 'a', x'01');
            INSERT INTO outbox (created_ns, session_id, dead, last_error, payload)
                VALUES (1800000000000000000, 'b', 1, '400 rejected', x'02');
            """
        )
    store = OutboxStore.open(path)
    assert [(r.session_id, r.request, r.first_at_ms) for r in store.claim(10, T0)] == [("a", b"\x01", T0)]
    assert [(q.session_id, q.reason) for q in store.list_quarantine()] == [("b", "400 rejected")]
    store.close()


def test_rows_of_a_file_no_process_holds_are_adopted(tmp_path: Path) -> None:
    import os

    own, own_fd = claim_outbox_path(tmp_path)
    other, other_fd = claim_outbox_path(tmp_path)
    writer = OutboxStore.open(other)
    writer.insert(_rows(3))
    writer.quarantine([writer.claim(1, T0)[0].id], "bad")
    writer.close()
    store = OutboxStore.open(own)
    assert store.adopt_orphans() == 0  # its process still holds it
    os.close(other_fd)  # ... and is gone
    assert store.adopt_orphans() == 3
    assert sorted(r.request for r in store.claim(10, T0 + 1)) == [b"payload-1", b"payload-2"]
    assert [q.reason for q in store.list_quarantine()] == ["bad"]
    assert store.adopt_orphans() == 0
    store.close()
    os.close(own_fd)


def _notification_payload(i: int) -> bytes:
    request = delivery_pb2.DeliveryRequest(request_id=f"request-{i:08d}")
    request.id.tnt_id = f"{i:032x}.34_0"
    request.context.channel = delivery_pb2.CHANNEL_TYPE_WEB
    request.context.address.url = "https://www.acme.example/products/category/item"
    note = request.notifications.add(
        id=f"notification-{i:08d}", type=delivery_pb2.METRIC_TYPE_DISPLAY, timestamp=T0 + i
    )
    note.mbox.name = "home"
    note.tokens.append("a" * 64)
    return request.SerializeToString()


def test_checkpoints_keep_the_files_near_the_size_of_what_they_hold(tmp_path: Path) -> None:
    """One-row transactions (group commit at c=1) used to leave ~8 KB per row on disk: the WAL was never
    truncated and deleted rows' pages never given back."""
    path = tmp_path / "outbox.sqlite3"
    writer = OutboxStore.open(path, autocheckpoint_pages=0)  # the serving side: never checkpoints itself
    sender = OutboxStore.open(path)
    payload = _notification_payload(0)
    count = 5000
    for i in range(count):
        writer.insert([(T0 + i, f"session-{i}", "34", _notification_payload(i))])
        if i % 500 == 499:
            sender.checkpoint()
    sender.checkpoint()
    writer.insert([(T0 + count, "session", "34", payload)])  # a write after a checkpoint restarts the WAL
    stats = sender.stats()
    assert stats.backlog == count + 1
    assert stats.file_bytes / stats.backlog < 2 * len(payload)  # near the payload's size, not pages per row
    assert stats.wal_bytes <= JOURNAL_SIZE_LIMIT  # truncated back once checkpointed
    while rows := sender.claim(1000, T0 + count):
        sender.ack(r.id for r in rows)
    for _ in range(2):  # the first checkpoint copies the deletions; a write restarts the WAL
        sender.checkpoint()
        writer.insert(_rows(1, at=T0 + count))
    sender.checkpoint()
    emptied = sender.stats()
    assert emptied.backlog == 2
    assert emptied.file_bytes < stats.file_bytes / 4  # free pages given back
    writer.close()
    sender.close()


def test_a_file_with_corrupt_pages_fails_its_check_and_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    store = OutboxStore.open(path)
    store.insert([(T0 + i, "s", None, b"p" * 200) for i in range(2000)])
    store.checkpoint()
    store.close()
    with path.open("r+b") as raw:  # garbage over the pages in the middle of the table
        raw.seek(4096 * 20)
        raw.write(b"\xde\xad\xbe\xef" * 4096)
    fresh = open_or_replace(path)
    assert fresh.count() == 0  # a fresh outbox: the service starts
    fresh.close()
    assert len(list(tmp_path.glob("outbox.sqlite3.corrupt-*"))) == 1


def test_a_transaction_writes_all_or_nothing_and_quarantine_joins_it(tmp_path: Path) -> None:
    store = OutboxStore.open(tmp_path / "outbox.sqlite3")
    store.insert(_rows(6))
    rows = store.claim(6, T0, lease_ms=1000)
    try:
        with store.transaction():
            store.ack([rows[0].id])
            store.quarantine([rows[1].id], "bad")  # its own transaction joins this one
            raise sqlite3.OperationalError("disk I/O error")  # (as a failing statement would)
    except sqlite3.OperationalError:
        pass
    assert (store.stats(T0).backlog, store.stats(T0).quarantined) == (6, 0)  # nothing of it was written
    with store.transaction():
        store.ack([rows[0].id])
        store.quarantine([rows[1].id], "bad")
        store.retry([rows[2].id], T0 + 5000, "503")
        claimed = store.claim(10, T0 + 1000, lease_ms=1000)
    assert [r.request for r in claimed] == [b"payload-3", b"payload-4", b"payload-5"]
    stats = store.stats(T0 + 1000)
    assert (stats.backlog, stats.quarantined) == (4, 1)
    assert not store._conn.in_transaction
    store.close()


def _wal_generation(path: Path) -> int:
    """The WAL header's checkpoint sequence number: SQLite adds one each time a write restarts the WAL."""
    with open(f"{path}-wal", "rb") as wal:
        return int.from_bytes(wal.read(16)[12:16], "big")


def test_checkpoints_restart_the_wal_while_the_serving_side_keeps_committing(tmp_path: Path) -> None:
    """The serving process commits one row a millisecond at c=1, so a commit lands during nearly every
    passive checkpoint, which then never sees the WAL wholly copied: no write restarted it, and it grew
    by the size of every commit (~14 MB/s, the file system zeroing each new block for the writer)."""
    path = tmp_path / "outbox.sqlite3"
    writer = OutboxStore.open(path, autocheckpoint_pages=0)
    sender = OutboxStore.open(path, autocheckpoint_pages=0)
    writer.insert(_rows(1))
    stop = threading.Event()

    def serve() -> None:
        for i in range(200_000):  # bounded; stopped long before
            if stop.is_set():
                return
            writer.insert([(T0 + i, f"session-{i}", "34", _notification_payload(i))])
            time.sleep(0.0002)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        start = _wal_generation(path)
        restarted = 0
        for _ in range(200):
            sender.checkpoint()
            time.sleep(0.01)
            restarted = _wal_generation(path) - start
            if restarted >= 10:
                break
    finally:
        stop.set()
        thread.join()
    assert restarted >= 10
    assert sender.stats().wal_bytes <= JOURNAL_SIZE_LIMIT
    writer.close()
    sender.close()
