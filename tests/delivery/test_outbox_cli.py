"""``targetd outbox stats|list|requeue`` on real outbox files (the installed command for one run, the
parsed command in-process for the rest)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from targetd_server.delivery import OutboxStore
from targetd_server.main import main

T0 = 1_800_000_000_000


def _fill(path: Path, waiting: int, quarantined: list[str]) -> list[int]:
    store = OutboxStore.open(path)
    store.insert([(T0 + i, f"s-{i}", None, b"x" * (10 + i)) for i in range(waiting + len(quarantined))])
    rows = store.claim(len(quarantined), T0 + 10**6)
    for row, reason in zip(rows, quarantined, strict=True):
        store.quarantine([row.id], reason)
    ids = [q.id for q in store.list_quarantine()]  # (the quarantine's own ids)
    store.close()
    return ids


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_stats_list_and_requeue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = _fill(tmp_path / "outbox.sqlite3", 2, ["rejected: 400 Bad Request", "undecodable row: truncated"])
    _fill(tmp_path / "outbox-1.sqlite3", 1, [])
    assert main(["outbox", "stats", "--data-dir", str(tmp_path), "--json"]) == 0
    stats = {line["file"]: line for line in _lines(capsys)}
    assert (stats["outbox.sqlite3"]["backlog"], stats["outbox.sqlite3"]["quarantined"]) == (2, 2)
    assert (stats["outbox-1.sqlite3"]["backlog"], stats["outbox-1.sqlite3"]["quarantined"]) == (1, 0)

    assert main(["outbox", "list", "--data-dir", str(tmp_path), "--json"]) == 0
    listed = _lines(capsys)
    assert [(r["id"], r["reason"]) for r in listed] == [
        (ids[0], "rejected: 400 Bad Request"),
        (ids[1], "undecodable row: truncated"),
    ]

    assert main(["outbox", "requeue", "--data-dir", str(tmp_path), "--id", str(ids[0]), "--json"]) == 0
    assert _lines(capsys) == [{"file": "outbox.sqlite3", "requeued": 1}]
    assert main(["outbox", "requeue", "--data-dir", str(tmp_path), "--id", str(ids[0])]) == 1  # gone
    capsys.readouterr()
    assert main(["outbox", "requeue", "--data-dir", str(tmp_path), "--all"]) == 0
    assert "outbox.sqlite3: 1 rows re-queued" in capsys.readouterr().out
    store = OutboxStore.open(tmp_path / "outbox.sqlite3")
    assert store.list_quarantine() == [] and store.count() == 4
    store.close()


def test_no_outbox_is_exit_1_and_the_installed_command_runs(tmp_path: Path) -> None:
    assert main(["outbox", "stats", "--data-dir", str(tmp_path)]) == 1
    _fill(tmp_path / "outbox.sqlite3", 0, ["rejected: 400"])
    done = subprocess.run(
        [sys.executable, "-m", "targetd_server.main", "outbox", "list", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "attempts" in done.stdout and "rejected: 400" in done.stdout
