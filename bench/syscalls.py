"""System calls per call of the serving process (and per notification of its sender), counted, not timed.

``python bench/syscalls.py [--duration S] [--concurrency 1 8] [--visitors N]`` starts the Delivery API
stand-in (50 ms away), targetd delivering to it (the flags of ``delivery.py``) and the gRPC echo floor,
then for each concurrency a ``loadgen.py`` run against the floor and one against targetd (GetOffers
execute 1 mbox, ``--visitors`` tntIds), each under ``strace -c -f -p`` (targetd's sender process is
traced too, apart). Prints one JSON object: system calls per call of each server by name, their total,
and the sender's per notification delivered.

Why: the timed rows move by 10-30% between minutes; the number of system calls per call does not, and
it names what the kernel time of a call is made of (the outbox's ``pwrite`` and ``fcntl``, one
``getrandom`` per id before the id pool, ...), so that a change can be checked in one sitting, as
``instructions.py`` does for user space. What it leaves out: the cost of each call (strace slows every
one down: rates under strace mean nothing) and calls made between the runs (timers, GetStatus refreshes:
a few per second, spread over thousands of calls). Needs ``strace`` on PATH (not a dependency of the
project: the script says so and exits 2 without it).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cases
import delivery
import sustained
from procs import ServerProcess
from run import BENCH, REPO, canned_reply, request_files, run_json, wait_serving

_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")


def _parse(summary: str) -> dict[str, int]:
    """``strace -c``'s table → {syscall: calls}."""
    counts: dict[str, int] = {}
    for line in summary.splitlines():
        match = _ROW.match(line)
        if match and match.group(2) != "total":
            counts[match.group(2)] = int(match.group(1))
    return counts


def _traced(
    pids: dict[str, int], tmp: Path, load: list[str], timeout: float
) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    """Run ``load`` while ``strace -c -f`` follows each of ``pids``; the load's JSON and the counts."""
    tracers = {
        name: subprocess.Popen(
            ["strace", "-c", "-f", "-p", str(pid), "-o", str(tmp / f"{name}.strace")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    }
    time.sleep(1.0)  # attached to every thread before the first call
    try:
        result = run_json(load, timeout=timeout)
    finally:
        for tracer in tracers.values():
            tracer.terminate()
        for tracer in tracers.values():
            tracer.wait(timeout=30)
    return result, {name: _parse((tmp / f"{name}.strace").read_text()) for name in pids}


def _per(counts: dict[str, int], n: int, top: int = 12) -> dict[str, Any]:
    ordered = sorted(counts.items(), key=lambda item: -item[1])
    return {
        "total": round(sum(counts.values()) / max(1, n), 2),
        "by_name": {name: round(value / max(1, n), 2) for name, value in ordered[:top]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--visitors", type=int, default=10000)
    args = parser.parse_args()
    if shutil.which("strace") is None:
        print(json.dumps({"ok": False, "error": "strace is not installed (apt install strace)"}))
        sys.exit(2)
    report: dict[str, Any] = {"ok": True, "rows": {}}
    with tempfile.TemporaryDirectory(prefix="targetd-syscalls-") as tmp_name:
        tmp = Path(tmp_name)
        stub = ServerProcess(
            "stub",
            [sys.executable, str(BENCH / "stub_delivery.py"), "--delay-ms", "50"],
            cwd=REPO,
            log=tmp / "stub.log",
        ).start()
        targetd, _, floor, canned = delivery.servers(tmp, stub.address)
        files = request_files(tmp, cases.load_artifact())
        try:
            targetd.start()
            wait_serving(targetd.address, timeout=30.0)
            canned.write_bytes(canned_reply(targetd.address, files[cases.EXECUTE_1]))
            floor.start()
            for c in args.concurrency:
                for name, server, kind, file in (
                    ("floor", floor, "echo", files["echo"]),
                    ("targetd", targetd, "get_offers", files[cases.EXECUTE_1]),
                ):
                    load = [sys.executable, str(BENCH / "loadgen.py"), "--address", server.address]
                    load += ["--kind", kind, "--request-file", str(file), "--concurrency", str(c)]
                    load += [
                        "--visitors",
                        str(args.visitors),
                        "--warmup",
                        "0",
                        "--duration",
                        str(args.duration),
                    ]
                    pids = {"server": server.pid}
                    sender_pid = delivery.outbox(targetd.address).sender_pid if name == "targetd" else 0
                    if sender_pid:
                        pids["sender"] = sender_pid
                    before = sustained.stub_counts(stub.address)["notifications"]
                    result, counts = _traced(pids, tmp, load, timeout=args.duration + 120)
                    calls = int(result.get("calls_total") or result.get("requests") or 0)
                    row: dict[str, Any] = {"calls": calls, "server_per_call": _per(counts["server"], calls)}
                    if "sender" in counts:
                        delivered = sustained.stub_counts(stub.address)["notifications"] - before
                        row["sender_per_notification"] = _per(counts["sender"], delivered)
                        row["delivered"] = delivered
                    report["rows"][f"{name} c{c}"] = row
        finally:
            for server in (targetd, floor, stub):
                server.stop()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
