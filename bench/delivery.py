"""Notification delivery at Target's latency (issue 11): GetOffers execute with every notification really
delivered to a Delivery API stand-in 50 ms away, beside the gRPC echo floor in the same run, and the
sustained rate one sender process holds.

``python bench/delivery.py [--delay-ms 50] [--visitors 10000] [--repeats 3] [--duration 10]
[--sustained-rate 5000 ...] [--sustained-duration 60]`` starts ``stub_delivery.py --delay-ms``, the floor
server and targetd (on-device, the bench artifact, notifications to the stub), then for c=1 and c=8,
``--repeats`` times each, a floor run and a targetd run of ``loadgen.py --visitors`` (the calls cycle over
``--visitors`` tntIds, so merging across calls does not carry delivery). Per targetd run:

* req/s, p50, p99 and serving-process CPU µs per call (``loadgen.py``), against the floor's;
* ``sender µs/notification`` — CPU of the sender process (the child targetd supervises: GetStatus
  ``outbox.sender_pid``) over the run and its drain, per notification the stub counted;
* ``stand-in µs/notification`` — the stub's own CPU over the same time: it shares the 2 cores with what is
  measured, where production's Delivery API is another machine;
* ``wal_mb_after`` — the outbox's WAL file after the run (GetStatus ``outbox.wal_bytes``): it stays near
  the 16 MB it is truncated back to when the checkpoints restart it; a WAL that never restarts grows by
  every commit (~14 MB/s at c=1, as it did before 2026-12-04);
* ``delivered`` — whether every row stored during the run (GetStatus ``outbox.stored``) was counted at the
  stub within 10 s of the run's end, and how long that took.

Beside them, in the same alternation, a **pipeline-off** run: a second targetd with ``--outbox-max-rows 1``,
which refuses (and counts, ``outbox_full``) every notification, so that it stores nothing and its sender
sends nothing — the same decisions with no outbox commit, no sender and no stand-in work. It is the
ceiling of what any notification pipeline could reach on this machine: the gap from the floor to it is
the decisioning's, the gap from it to the delivering row is the pipeline's.

Then ``sustained.py``'s measurement for each ``--sustained-rate``. Prints the table (medians of the
repeats) and writes ``bench/results/delivery.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cases
import grpc
import sustained
from procs import ServerProcess, cpu_seconds
from run import BENCH, REPO, RESULTS, canned_reply, free_port, log, request_files, run_json, wait_serving

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc

DRAIN_S = 10.0


def outbox(address: str) -> pb.OutboxStatus:
    with grpc.insecure_channel(address) as channel:
        reply = pb_grpc.DecisioningServiceStub(channel).GetStatus(pb.GetStatusRequest(), timeout=5)
        return reply.outbox


def load(server: ServerProcess, kind: str, file: Path, c: int, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(BENCH / "loadgen.py"), "--address", server.address, "--kind", kind]
    cmd += ["--request-file", str(file), "--concurrency", str(c), "--server-pid", str(server.pid)]
    cmd += ["--visitors", str(args.visitors)] if kind == "get_offers" else []
    cmd += ["--warmup", str(args.warmup), "--duration", str(args.duration)]
    return run_json(cmd, timeout=args.warmup + args.duration + 60)


def targetd_run(
    targetd: ServerProcess, stub_process: ServerProcess, file: Path, c: int, args: argparse.Namespace
) -> dict[str, Any]:
    stub = stub_process.address
    before = outbox(targetd.address)
    sender_pid = before.sender_pid
    sender_cpu = cpu_seconds(sender_pid) if sender_pid else 0.0
    stub_cpu = cpu_seconds(stub_process.pid)
    counted = sustained.stub_counts(stub)["notifications"]
    result = load(targetd, "get_offers", file, c, args)
    stored = outbox(targetd.address).stored - before.stored
    ended = time.monotonic()
    delivered_s = None
    while time.monotonic() - ended < DRAIN_S:
        if sustained.stub_counts(stub)["notifications"] - counted >= stored:
            delivered_s = round(time.monotonic() - ended, 2)
            break
        time.sleep(0.05)
    notes = sustained.stub_counts(stub)["notifications"] - counted
    after = outbox(targetd.address)
    if after.sender_pid == sender_pid and sender_pid:
        result["sender_us_per_notification"] = (cpu_seconds(sender_pid) - sender_cpu) / max(1, notes) * 1e6
    # the stand-in's own CPU: a cost of this machine's benchmark that production's remote Delivery API is not
    result["stub_us_per_notification"] = (cpu_seconds(stub_process.pid) - stub_cpu) / max(1, notes) * 1e6
    result.update(
        stored=stored,
        counted=notes,
        delivered_within_s=delivered_s,
        backlog_after=after.backlog,
        wal_mb_after=round(after.wal_bytes / 1e6, 1),  # the WAL restarts: ~16 MB at most (docs/remote.md)
    )
    return result


_TIMED = ("rps", "p50_ms", "p99_ms", "server_cpu_us")


def vs_floor(row: dict[str, Any], base: dict[str, Any]) -> dict[str, float]:
    """``row``'s rate, p99 and serving CPU as multiples of the floor's (``base``)."""
    return {
        "rps_vs_floor": row["rps"] / base["rps"],
        "p99_vs_floor": row["p99_ms"] / base["p99_ms"],
        "cpu_vs_floor": row["server_cpu_us"] / base["server_cpu_us"],
    }


def median(runs: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in runs if r.get("ok", True) and isinstance(r.get(key), (int, float))]
    return statistics.median(values) if values else float("nan")


def servers(tmp: Path, stub: str) -> tuple[ServerProcess, ServerProcess, ServerProcess, Path]:
    """The servers of these rows, not started: targetd delivering to the stand-in at ``stub``, the same
    targetd with the pipeline off, and the floor; and the file the floor's canned GetOffers reply must be
    written to (targetd's own reply) before it starts."""
    common = [
        "--client", cases.CLIENT, "--organization-id", cases.ORGANIZATION_ID,
        "--decisioning-method", "on-device", "--telemetry-enabled", "false", "--polling-interval", "0",
        "--server-domain", stub, "--secure", "false", "--cdn-base-path", f"http://{stub}",
        "--log-level", "warning",
    ]  # fmt: skip
    targetd = ServerProcess(
        "targetd",
        [sys.executable, "-m", "targetd_server.main", "serve", "--listen", "127.0.0.1:0", *common,
         "--artifact-payload", f"@{cases.ARTIFACT}", "--data-dir", str(tmp / "targetd-data"),
         "--metrics-listen", f"127.0.0.1:{free_port()}"],
        cwd=REPO,
        log=tmp / "targetd.log",
    )  # fmt: skip
    bare = ServerProcess(  # the pipeline-off run: every row refused, nothing stored or sent
        "targetd-pipeline-off",
        [sys.executable, "-m", "targetd_server.main", "serve", "--listen", "127.0.0.1:0", *common,
         "--artifact-payload", f"@{cases.ARTIFACT}", "--data-dir", str(tmp / "bare-data"),
         "--outbox-max-rows", "1"],
        cwd=REPO,
        log=tmp / "bare.log",
    )  # fmt: skip
    canned = tmp / "canned-offers.bin"
    floor = ServerProcess(
        "floor",
        [sys.executable, str(BENCH / "floor_server.py"), "--listen", "127.0.0.1:0", *common,
         "--data-dir", str(tmp / "floor-data"), "--canned-offers", str(canned)],
        cwd=REPO,
        log=tmp / "floor.log",
    )  # fmt: skip
    return targetd, bare, floor, canned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=50.0, help="the Delivery API stand-in's delay")
    parser.add_argument("--visitors", type=int, default=10000, help="tntIds the calls cycle over")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--sustained-rate", type=int, nargs="*", default=[5000])
    parser.add_argument("--sustained-duration", type=float, default=60.0)
    args = parser.parse_args()
    artifact = cases.load_artifact()
    report: dict[str, Any] = {"args": vars(args), "rows": {}}
    with tempfile.TemporaryDirectory(prefix="targetd-delivery-") as tmp_name:
        tmp = Path(tmp_name)
        stub = ServerProcess(
            "stub",
            [sys.executable, str(BENCH / "stub_delivery.py"), "--delay-ms", str(args.delay_ms)],
            cwd=REPO,
            log=tmp / "stub.log",
        ).start()
        targetd, bare, floor, canned = servers(tmp, stub.address)
        files = request_files(tmp, artifact)
        try:
            targetd.start()
            wait_serving(targetd.address, timeout=30.0)
            canned.write_bytes(canned_reply(targetd.address, files[cases.EXECUTE_1]))
            floor.start()
            bare.start()
            wait_serving(bare.address, timeout=30.0)
            for c in (1, 8):
                floors, runs, bares = [], [], []
                for attempt in range(args.repeats):
                    floors.append(load(floor, "echo", files["echo"], c, args))
                    runs.append(targetd_run(targetd, stub, files[cases.EXECUTE_1], c, args))
                    bares.append(load(bare, "get_offers", files[cases.EXECUTE_1], c, args))
                    log(f"delivery c={c} #{attempt + 1}: floor {floors[-1].get('rps', 0):.0f} req/s, "
                        f"targetd {json.dumps({k: runs[-1].get(k) for k in ('rps', 'p99_ms', 'server_cpu_us', 'sender_us_per_notification', 'delivered_within_s', 'wal_mb_after')})}, "
                        f"pipeline off {json.dumps({k: bares[-1].get(k) for k in ('rps', 'p99_ms', 'server_cpu_us')})}")  # fmt: skip
                row: dict[str, Any] = {
                    key: median(runs, key)
                    for key in (*_TIMED, "sender_us_per_notification", "stub_us_per_notification")
                }
                base = {key: median(floors, key) for key in _TIMED}
                off: dict[str, Any] = {key: median(bares, key) for key in _TIMED}
                off.update(vs_floor(off, base), runs=bares)
                row.update(
                    vs_floor(row, base),
                    floor=base,
                    pipeline_off=off,
                    all_delivered_within_10s=all(r.get("delivered_within_s") is not None for r in runs),
                    runs=runs,
                )
                report["rows"][f"c{c}"] = row
        finally:
            for server in (targetd, floor, bare):
                server.stop()
        templates = sustained.payloads(args.visitors)
        report["sustained"] = []
        for rate in args.sustained_rate:
            result = sustained.run_rate(stub, templates, rate, args.sustained_duration, tmp)
            log(f"sustained {rate}/s: {json.dumps(result)}")
            report["sustained"].append(result)
        stub.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "delivery.json").write_text(json.dumps(report, indent=1))
    print(
        "| row | req/s | p50 ms | p99 ms | server µs/call | sender µs/notif. | stand-in µs/notif. | vs floor "
        "| all delivered ≤10 s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for key, row in report["rows"].items():
        base = row["floor"]
        print(
            f"| floor {key} | {base['rps']:,.0f} | {base['p50_ms']:.2f} | {base['p99_ms']:.2f} | "
            f"{base['server_cpu_us']:,.0f} | | | | |"
        )
        print(
            f"| GetOffers+delivery {key} | {row['rps']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{row['server_cpu_us']:,.0f} | {row['sender_us_per_notification']:,.0f} | "
            f"{row['stub_us_per_notification']:,.0f} | "
            f"{row['rps_vs_floor']:.2f}x req/s, {row['p99_vs_floor']:.2f}x p99, {row['cpu_vs_floor']:.2f}x CPU | "
            f"{row['all_delivered_within_10s']} |"
        )
        off = row["pipeline_off"]
        print(
            f"| GetOffers, pipeline off {key} | {off['rps']:,.0f} | {off['p50_ms']:.2f} | {off['p99_ms']:.2f} | "
            f"{off['server_cpu_us']:,.0f} | | | {off['rps_vs_floor']:.2f}x req/s, {off['p99_vs_floor']:.2f}x p99, "
            f"{off['cpu_vs_floor']:.2f}x CPU | (nothing stored) |"
        )
    for result in report["sustained"]:
        print(f"sustained {result['rate']}/s for {args.sustained_duration:.0f} s: {json.dumps(result)}")


if __name__ == "__main__":
    main()
