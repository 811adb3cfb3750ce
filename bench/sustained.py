"""Sustained delivery: the notifications/s one sender process holds against a Delivery API 50 ms away.

``python bench/sustained.py [--rate R ...] [--duration S] [--delay-ms MS] [--visitors N]`` starts
``stub_delivery.py`` (answering every POST after ``MS`` ms, default 50) and, for each rate, a fresh outbox
file with a real sender process on it (``python -m targetd_server.delivery.sender``, the settings
targetd's defaults but for the stub's address). A producer in this process inserts the display
notification rows of the benchmark's execute call — each for one of ``N`` visitors (default 10,000, so
merging per visitor carries little) — at ``R`` rows/s in groups every 10 ms, as group commits would, for
``S`` seconds (default 60). It prints one JSON line per rate:

* ``delivered_per_s`` — notifications counted at the stand-in during the window, per second;
* ``sender_cpu_us`` — CPU µs of the sender process per notification delivered (utime + stime);
* ``max_backlog`` / ``end_backlog`` — rows waiting, sampled each second, and at the end;
* ``drained_s`` — seconds after the producer stopped until every notification was counted;
* ``held`` — whether the rate was held: nothing lost (every notification counted, distinct ids) and the
  backlog bounded (at most 2 seconds of rows at any sample).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import cases
from procs import ServerProcess, cpu_seconds

from targetd.json_format import parse_dict
from targetd.v1 import delivery_pb2
from targetd_server.config import Settings
from targetd_server.delivery.sender_protocol import settings_line
from targetd_server.delivery.store import OutboxStore, now_ms
from targetd_server.engine import build_notification_request, compile_artifact, decide

TICK_S = 0.01


def payloads(visitors: int) -> list[bytes]:
    """The execute call's notification request for each of ``visitors`` tntIds (ids fixed later)."""
    raw = cases.load_artifact()
    request = delivery_pb2.DeliveryRequest()
    parse_dict(cases.delivery_request(cases.EXECUTE_1, raw), request)
    result = decide(compile_artifact(raw), request, client=cases.CLIENT, telemetry_enabled=True)
    entries = [result.telemetry_entry] if result.telemetry_entry is not None else []
    built = build_notification_request(result.request, result.notifications, entries)
    assert built is not None
    out = []
    for i in range(visitors):
        built.id.tnt_id = f"{i:032x}"
        out.append(built.SerializeToString())
    return out


def numbered(template: bytes, n: int, run: str) -> bytes:
    """``template`` with request and notification ids unique to row ``n`` of the run ``run`` (the stand-in
    counts distinct notification ids: the rates of one invocation must not share any)."""
    request = delivery_pb2.DeliveryRequest.FromString(template)
    request.request_id = f"req-{run}-{n}"
    for note in request.notifications:
        note.id = f"note-{run}-{n}"
    return request.SerializeToString()


def stub_counts(address: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{address}/counts", timeout=10) as reply:
        data: dict[str, Any] = json.loads(reply.read())
        return data


def run_rate(
    stub: ServerProcess, templates: list[bytes], rate: int, duration: float, tmp: Path
) -> dict[str, Any]:
    path = tmp / f"outbox-{rate}.sqlite3"
    run = f"{rate}-{time.time_ns()}"  # (ids unique across the runs of one stand-in)
    store = OutboxStore.open(path, autocheckpoint_pages=0)
    settings = Settings(
        client=cases.CLIENT,
        organization_id=cases.ORGANIZATION_ID,
        server_domain=stub.address,
        secure=False,
        log_format="text",
    )
    with (tmp / f"sender-{rate}.log").open("w") as log:
        sender = subprocess.Popen(
            [sys.executable, "-m", "targetd_server.delivery.sender", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    assert sender.stdin is not None
    sender.stdin.write(settings_line(settings))
    sender.stdin.flush()
    time.sleep(1.0)  # (bench only) the sender's start-up is not part of the window
    before = stub_counts(stub.address)
    cpu_before = cpu_seconds(sender.pid)
    started = time.monotonic()
    produced = max_backlog = 0
    next_sample = started + 1.0
    while True:
        now = time.monotonic()
        if now - started >= duration:
            break
        due = int((now - started) * rate) - produced
        if due > 0:
            at = now_ms()
            rows = [
                (at, f"session-{(produced + i) % len(templates)}", None,
                 numbered(templates[(produced + i) % len(templates)], produced + i, run))
                for i in range(due)
            ]  # fmt: skip
            store.insert(rows)
            produced += due
        if now >= next_sample:
            next_sample += 1.0
            max_backlog = max(max_backlog, store.count())
        time.sleep(TICK_S)
    end_backlog = store.count()
    stopped = time.monotonic()
    expected = before["unique_notifications"] + produced
    drained_s = None
    while time.monotonic() - stopped < 30.0:
        if stub_counts(stub.address)["unique_notifications"] >= expected:
            drained_s = round(time.monotonic() - stopped, 2)
            break
        time.sleep(0.05)
    after = stub_counts(stub.address)
    cpu = cpu_seconds(sender.pid) - cpu_before
    sender.stdin.close()
    sender.wait(timeout=30)
    store.close()
    delivered = after["notifications"] - before["notifications"]
    unique = after["unique_notifications"] - before["unique_notifications"]
    return {
        "rate": rate,
        "produced": produced,
        "delivered": delivered,
        "unique_delivered": unique,
        "delivered_per_s": round(unique / (stopped - started + (drained_s or 0.0))),
        "sender_cpu_us": round(cpu / max(1, delivered) * 1e6, 1),
        "max_backlog": max_backlog,
        "end_backlog": end_backlog,
        "drained_s": drained_s,
        "held": unique == produced and max_backlog <= 2 * rate and drained_s is not None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, nargs="+", default=[5000], help="rows/s to produce")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds each rate is produced")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="the stand-in's answer delay")
    parser.add_argument("--visitors", type=int, default=10000, help="distinct tntIds cycled through")
    args = parser.parse_args()
    templates = payloads(args.visitors)
    with tempfile.TemporaryDirectory(prefix="targetd-sustained-") as tmp:
        stub = ServerProcess(
            "stub",
            [
                sys.executable,
                str(Path(__file__).with_name("stub_delivery.py")),
                "--delay-ms",
                str(args.delay_ms),
            ],
            cwd=cases.REPO,
            log=Path(tmp) / "stub.log",
        ).start()
        try:
            for rate in args.rate:
                result = run_rate(stub, templates, rate, args.duration, Path(tmp))
                result["stub_cpu_s"] = round(cpu_seconds(stub.pid), 1)
                print(json.dumps(result), flush=True)
        finally:
            stub.stop()


if __name__ == "__main__":
    main()
