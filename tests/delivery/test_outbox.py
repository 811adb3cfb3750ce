"""The outbox in-process on real SQLite files: group commit on the serving loop, honest drops (outbox
full, disk full through SQLite's own SQLITE_FULL, the write lock held), recovery, rows stored after close,
one file per worker. The sender process over the store is tests/delivery/test_sender.py."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import uvloop

from targetd.v1 import decisioning_service_pb2, delivery_pb2
from targetd_server.delivery import Outbox, OutboxStore
from targetd_server.delivery.outbox_files import claim_outbox_path
from tests.support import eventually_async


def _notification(i: int) -> delivery_pb2.DeliveryRequest:
    request = delivery_pb2.DeliveryRequest(request_id=f"r-{i}")
    request.id.tnt_id = f"visitor-{i}"
    note = request.notifications.add(id=f"n-{i}", type=delivery_pb2.METRIC_TYPE_DISPLAY, timestamp=1000 + i)
    note.mbox.name = "home"
    return request


def _bytes(path: Path) -> int:
    return path.stat().st_size


def _on_disk(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


# ---------------------------------------------------------------------------------------- group commit


async def test_the_calls_of_one_loop_turn_share_one_commit(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    futures = [outbox.enqueue(_notification(i), session_id="s", cluster=None) for i in range(5)]
    # the first call of a turn is committed at once (nothing of an earlier turn waits to share it)
    assert futures[0].done() and futures[0].result() is True and _on_disk(path) == 1
    assert len({id(f) for f in futures[1:]}) == 1 and futures[1] is not futures[0]  # the rest: one group
    assert not futures[1].done() and _on_disk(path) == 1  # nothing more committed before the turn ends
    assert await asyncio.shield(futures[1]) is True
    assert _on_disk(path) == 5  # stored when the future says so: visible to another connection
    later = outbox.enqueue(_notification(5), session_id="s", cluster=None)
    assert later is not futures[1] and later.done() and await later is True  # the next turn: at once
    assert outbox.state.stored == 6
    outbox.close()


async def test_a_group_commits_at_once_when_it_holds_commit_rows(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", commit_rows=4)
    futures = [outbox.enqueue(_notification(i), session_id="s", cluster=None) for i in range(10)]
    assert len({id(f) for f in futures}) == 4  # 1 (the turn's first, at once) + 4 + 4 + 1
    assert futures[0].done() and futures[4].done() and futures[8].done() and not futures[9].done()
    assert await futures[9] is True and _on_disk(outbox.path) == 10
    outbox.close()


async def test_a_commit_window_keeps_the_group_open(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", commit_window=0.05)
    first = outbox.enqueue(_notification(0), session_id="s", cluster=None)
    await asyncio.sleep(0)  # a loop turn later: still the same group
    second = outbox.enqueue(_notification(1), session_id="s", cluster=None)
    assert second is first
    assert await first is True and _on_disk(outbox.path) == 2
    outbox.close()


async def test_a_row_that_finds_other_work_ready_opens_a_group_later_calls_join(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    asyncio.get_running_loop().call_soon(lambda: None)  # other work ready, as other calls in flight are
    first = outbox.enqueue(_notification(0), session_id="s", cluster=None)
    assert not first.done() and _on_disk(path) == 0  # not committed at once: the group waits for company
    await asyncio.sleep(0)  # a later turn of the loop (its timer, if due, runs after this task)
    second = outbox.enqueue(_notification(1), session_id="s", cluster=None)
    assert second is first  # one transaction for both calls
    assert await asyncio.wait_for(asyncio.shield(first), 10) is True  # the window closes by itself
    assert _on_disk(path) == 2 and outbox.state.stored == 2
    alone = outbox.enqueue(_notification(2), session_id="s", cluster=None)  # nothing else ready now
    assert alone.done() and alone.result() is True and _on_disk(path) == 3
    outbox.close()


def test_on_a_loop_without_a_ready_queue_rows_are_committed_at_once(tmp_path: Path) -> None:
    """uvloop has no ``_ready``: the outbox cannot see other work there and commits at once, as before."""

    async def body() -> None:
        outbox = Outbox(tmp_path / "outbox.sqlite3")
        asyncio.get_running_loop().call_soon(lambda: None)
        future = outbox.enqueue(_notification(0), session_id="s", cluster=None)
        assert future.done() and future.result() is True and _on_disk(outbox.path) == 1
        outbox.close()

    uvloop.run(body())


async def test_while_the_sender_holds_the_write_lock_the_group_waits_then_commits(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # as the sender's ack transaction
    future = outbox.enqueue(_notification(0), session_id="s", cluster=None)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(future), 0.05)  # not committed while the lock is held
    joined = outbox.enqueue(_notification(1), session_id="s", cluster=None)
    assert joined is future  # new calls join the waiting group
    other.execute("COMMIT")
    assert await future is True and _on_disk(path) == 2
    assert outbox.state.dropped["storage_busy"] == 0
    other.close()
    outbox.close()


# ---------------------------------------------------------------------------------------- drops


async def test_a_full_outbox_refuses_new_rows_counted(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_rows=2)
    assert await outbox.enqueue(_notification(0), session_id="s", cluster=None) is True
    assert await outbox.enqueue(_notification(1), session_id="s", cluster=None) is True
    assert await outbox.enqueue(_notification(2), session_id="s", cluster=None) is False
    assert outbox.state.dropped["outbox_full"] == 1
    assert outbox.degraded_reason().startswith("outbox_full")
    outbox.close()
    reopened = Outbox(tmp_path / "outbox.sqlite3", max_rows=2)  # the oldest rows are kept
    assert _on_disk(reopened.path) == 2
    reopened.close()


async def test_disk_full_drops_the_group_counted_and_recovers_when_space_returns(tmp_path: Path) -> None:
    """SQLITE_FULL from SQLite itself: the file may not grow past max_page_count (the process test fills
    a real tmpfs)."""
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    assert outbox._store is not None
    conn = outbox._store._conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")
    big = _notification(0)
    big.notifications[0].tokens.extend(["x" * 4000] * 4)  # needs new pages
    assert await outbox.enqueue(big, session_id="s", cluster=None) is False
    assert outbox.state.dropped["disk_full"] == 1
    status = decisioning_service_pb2.OutboxStatus()
    outbox.fill_status(status)
    assert status.degraded and status.dropped["disk_full"] == 1 and "disk_full" in status.reason
    conn.execute("PRAGMA max_page_count=1073741823")  # space returns
    assert await outbox.enqueue(big, session_id="s", cluster=None) is True
    assert outbox.state.storage_error == "" and _on_disk(path) == 1
    outbox.close()


async def test_an_outbox_that_cannot_be_opened_drops_counted_and_opens_once_it_can(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_bytes(b"a file where the data dir should be")  # (as root, permissions would not stop it)
    outbox = Outbox(blocker / "outbox.sqlite3")  # starts: decisions are served without the outbox
    assert "cannot open" in outbox.degraded_reason()
    assert await outbox.enqueue(_notification(0), session_id="s", cluster=None) is False
    assert outbox.state.dropped["storage_error"] == 1
    blocker.unlink()
    blocker.mkdir()

    async def stored() -> bool:
        return await outbox.enqueue(_notification(1), session_id="s", cluster=None)

    assert await eventually_async(stored)  # tried again every REOPEN_INTERVAL seconds
    assert outbox.state.storage_error == "" and _on_disk(outbox.path) == 1
    outbox.close()


async def test_rows_enqueued_after_close_are_stored_for_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    outbox.close()
    assert await outbox.enqueue(_notification(9), session_id="s", cluster=None) is True  # still in flight
    assert _on_disk(path) == 1


async def test_status_reports_what_the_file_holds(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    for i in range(3):
        outbox.enqueue(_notification(i), session_id="s", cluster=None)
    await outbox.enqueue(_notification(3), session_id="s", cluster=None)
    store = OutboxStore.open(path)
    store.quarantine([store.claim(1, 2**62)[0].id], "rejected: 400")
    store.close()
    outbox.state.sender_state = "running"
    await outbox.refresh()
    status = decisioning_service_pb2.OutboxStatus()
    outbox.fill_status(status)
    assert (status.backlog, status.quarantined, status.stored, status.degraded) == (3, 1, 4, False)
    assert status.file_bytes > 0 and status.sender_state == "running"
    outbox.close()


async def test_commits_never_checkpoint_and_refresh_does_when_the_sender_has_not(tmp_path: Path) -> None:
    """An automatic checkpoint would run inside a commit, on the serving loop (tens of ms): the serving
    connection leaves the WAL to the sender, and refresh() checkpoints off the loop past a bound."""
    path = tmp_path / "outbox.sqlite3"
    wal = Path(f"{path}-wal")
    outbox = Outbox(path)
    for i in range(3000):  # one-row commits, ~2 pages each: ~6,000 pages, past any automatic checkpoint
        await outbox.enqueue(_notification(i), session_id="s", cluster=None)
    # never restarted (and truncated to 1 MB) by a checkpoint along the way
    assert _bytes(wal) > 5000 * 4096
    outbox.wal_checkpoint_bytes = 1024 * 1024
    await outbox.refresh()  # checkpoints (the next write restarts the WAL)
    await outbox.enqueue(_notification(9999), session_id="s", cluster=None)
    assert _on_disk(path) == 3001
    with sqlite3.connect(path) as conn:
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0 and frames < 10, (frames, copied)  # the WAL restarted after refresh's checkpoint
    outbox.close()


# ---------------------------------------------------------------------------------------- files


def test_workers_sharing_a_data_dir_get_their_own_outbox(tmp_path: Path) -> None:
    import os

    first, fd1 = claim_outbox_path(tmp_path)
    second, fd2 = claim_outbox_path(tmp_path)
    assert first.name == "outbox.sqlite3"
    assert second.name == "outbox-1.sqlite3"  # the first is locked by a live owner
    os.close(fd1)  # its owner died: a restarted worker adopts its rows
    again, fd3 = claim_outbox_path(tmp_path)
    assert again == first
    os.close(fd2)
    os.close(fd3)
