"""The outbox's storage failures with real targetd processes, real SQLite files and the edge stand-in:
bad rows and a garbage database file at start (the service starts, every other row is delivered, the bad
ones are in quarantine), and a full data dir (a real 1 MB tmpfs: decisions keep being served, health stays
SERVING, GetStatus says degraded with the drops counted; once space returns new notifications are stored
and delivered)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from targetd_server.delivery import OutboxStore, now_ms
from tests.delivery.grpcutil import Client
from tests.delivery.support import EdgeProcess, targetd
from tests.support import eventually

CONTEXT = {"channel": "web", "address": {"url": "https://www.acme.example/"}}


def _execute(client: Client, count: int, prefix: str) -> None:
    for i in range(count):
        envelope = client.offers(
            {
                "requestId": f"{prefix}-{i}",
                "context": CONTEXT,
                "execute": {"mboxes": [{"name": "home", "index": 1}]},
            }
        )
        assert envelope.meta.decisioning_method == delivery_pb2.DECISIONING_METHOD_ON_DEVICE
        assert envelope.response.execute.mboxes[0].options  # a real decision


def _delivered(edge: EdgeProcess, prefix: str) -> set[str]:
    """The calls (requestIds) starting with ``prefix`` whose outbound request reached the stand-in (each
    carries the call's telemetry entry beside its display notification)."""
    return {
        str(t["entry"]["requestId"])
        for t in edge.telemetry()
        if str(t["entry"].get("requestId", "")).startswith(prefix)
    }


def _status(client: Client) -> pb.GetStatusResponse:
    reply: pb.GetStatusResponse = client.stub.GetStatus(pb.GetStatusRequest(), timeout=5)
    return reply


def _status_when(client: Client, check: Callable[[pb.OutboxStatus], bool]) -> pb.GetStatusResponse:
    """GetStatus once its ``outbox`` passes ``check`` (bounded wait)."""

    def ready() -> pb.GetStatusResponse:
        status = _status(client)
        assert check(status.outbox), status.outbox
        return status

    return eventually(ready, timeout=20)


def _note(i: int) -> delivery_pb2.DeliveryRequest:
    request = delivery_pb2.DeliveryRequest(request_id=f"stored-{i}")
    request.id.tnt_id = f"visitor-{i}"
    request.context.channel = delivery_pb2.CHANNEL_TYPE_WEB
    note = request.notifications.add(id=f"n-{i}", type=delivery_pb2.METRIC_TYPE_DISPLAY, timestamp=1000 + i)
    note.mbox.name = "home"
    return request


def test_bad_rows_are_quarantined_and_every_other_row_delivered(
    clean_edge: EdgeProcess, data_dir: Path
) -> None:
    unsendable = _note(99)
    unsendable.context.channel = 99  # type: ignore[assignment]  # (no Delivery API spelling)
    rows = [_note(i).SerializeToString() for i in range(3)]
    rows[1:1] = [b"\x0a\xff\xff truncated", unsendable.SerializeToString()]
    store = OutboxStore.open(data_dir / "outbox.sqlite3")
    store.insert([(now_ms(), "session", None, payload) for payload in rows])
    store.close()
    with targetd(clean_edge, data_dir, "on-device") as proc, Client(proc) as client:
        notes = clean_edge.wait_notifications(3)
        assert sorted(n["notification"]["id"] for n in notes) == ["n-0", "n-1", "n-2"]
        status = _status_when(client, lambda outbox: outbox.quarantined == 2)
        assert status.outbox.backlog == 0
        _execute(client, 2, "after")  # the service serves and delivers as usual
        clean_edge.wait_notifications(5)
    listed = subprocess.run(
        [".venv/bin/targetd", "outbox", "list", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "undecodable" in listed and "enum value 99" in listed


def test_a_garbage_database_file_is_moved_aside_and_the_service_starts(
    clean_edge: EdgeProcess, data_dir: Path
) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "outbox.sqlite3").write_bytes(b"not a database at all\n" * 1000)
    with targetd(clean_edge, data_dir, "on-device") as proc, Client(proc) as client:
        _execute(client, 3, "fresh")
        notes = clean_edge.wait_notifications(3)
        assert len(notes) == 3
        proc.stop()
        assert "is not a readable outbox" in proc.stderr()
    aside = list(data_dir.glob("outbox.sqlite3.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"not a database at all")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs mounted for the test (root only)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr!r}); test_outbox covers SQLITE_FULL in-process")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
                out.flush()
        except OSError:
            pass
    return filler


def test_a_full_data_dir_serves_decisions_counts_drops_and_recovers(
    clean_edge: EdgeProcess, small_disk: Path
) -> None:
    data_dir = small_disk / "targetd"
    clean_edge.fault(status=503)  # nothing leaves the outbox while the disk fills
    with targetd(clean_edge, data_dir, "on-device") as proc, Client(proc) as client:
        _execute(client, 2, "before")
        filler = _fill(small_disk)
        _execute(client, 20, "full")  # every decision is served
        status = _status_when(client, lambda outbox: outbox.dropped["disk_full"] > 0)
        assert status.outbox.degraded and "disk_full" in status.outbox.reason and status.ready
        with grpc.insecure_channel(proc.address) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        os.unlink(filler)  # space returns
        clean_edge.clear_fault()
        _execute(client, 3, "after")
        eventually(lambda: {"after-0", "after-1", "after-2"} <= _delivered(clean_edge, "after"), timeout=30)
        eventually(lambda: {"before-0", "before-1"} <= _delivered(clean_edge, "before"), timeout=30)
        status = _status_when(client, lambda outbox: not outbox.degraded)
        assert status.outbox.dropped["disk_full"] >= 1  # the count stays
