"""Fan-out benchmark: time from an upstream artifact change to its receipt by every one of N subscribers.

    .venv/bin/python bench/fanout.py [--sizes 100,1000,10000] [--rounds 10]

For each N it starts, on loopback:
* a local artifact CDN (HTTP, ETag) that records when it first sends each new revision (t0);
* ``targetd serve`` on-device, polling that CDN every 500 ms (the development-only polling floor);
* subscriber processes (2) holding N ``SubscribeEvents`` streams over 250-stream channels.
Each round publishes a new ETag upstream; every subscriber records when the
``artifact_download_succeeded`` event of that revision arrives. t0 → receipt therefore includes the
download, parse, compile and swap of the artifact and the fan-out, not the polling wait.

The baseline, measured in the same run: the same subscribers against a bare grpc.aio fan-out server
(same channel options, a bounded ``asyncio.Queue`` per subscriber, one pre-built event, no bus logic),
triggered by a GetStatus call (t0 = just before the call).

It prints one table: per N and server, the latency of the last subscriber per change (p50/p99 over rounds)
and of all receipts (p50/p99), the server's RSS with no subscribers and with N, and the RSS per
subscriber. Bounded: every wait has a deadline; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from procs import ServerProcess, cpu_seconds, rss_mb

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parents[1]
ARTIFACT = REPO.parent / "shared" / "conformance" / "artifacts" / "TEST_ARTIFACT_AB_SIMPLE.json"
STREAMS_PER_CHANNEL = 250
SUBSCRIBE_BATCH = 500
WORKERS = 2
SUCCEEDED = pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED


# ---------------------------------------------------------------------------------------- the CDN


class Cdn:
    """Serves one artifact body under a changing ETag; records when each ETag was first sent."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.etag = '"rev-0"'
        self.first_sent: dict[str, float] = {}
        self.lock = threading.Lock()
        cdn = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with cdn.lock:
                    etag = cdn.etag
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                with cdn.lock:
                    cdn.first_sent.setdefault(etag, time.time())
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(cdn.body)))
                self.end_headers()
                self.wfile.write(cdn.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/rules.json"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def publish(self, etag: str) -> None:
        with self.lock:
            self.etag = etag

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------- the floor


class FloorFanout(pb_grpc.DecisioningServiceServicer):
    """The baseline: a bounded queue per subscriber and one pre-built event per trigger (GetStatus)."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[pb.SubscribeEventsResponse]] = set()
        self.round = 0

    async def SubscribeEvents(
        self, request: pb.SubscribeEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.SubscribeEventsResponse]:
        queue: asyncio.Queue[pb.SubscribeEventsResponse] = asyncio.Queue(256)
        self.queues.add(queue)
        try:
            yield pb.SubscribeEventsResponse(event=pb.Event(type=pb.EVENT_TYPE_STATE))
            while True:
                yield await queue.get()
        finally:
            self.queues.discard(queue)

    async def GetStatus(
        self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetStatusResponse:
        self.round += 1
        event = pb.Event(
            type=SUCCEEDED, sequence=self.round, artifact=pb.ArtifactInfo(revision=f'"rev-{self.round}"')
        )
        response = pb.SubscribeEventsResponse(event=event)
        for queue in list(self.queues):
            if not queue.full():
                queue.put_nowait(response)
        return pb.GetStatusResponse(ready=True, subscriber_count=len(self.queues))


async def floor_main() -> None:
    from targetd_server.config import Settings
    from targetd_server.service.server import server_options

    settings = Settings(client="bench", organization_id="bench@AdobeOrg")
    server = grpc.aio.server(options=server_options(settings))
    pb_grpc.add_DecisioningServiceServicer_to_server(FloorFanout(), server)  # type: ignore[abstract]  # 2 RPCs only
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"floor listening on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


# ---------------------------------------------------------------------------------------- subscribers


async def worker_main(address: str, count: int, rounds: int) -> None:
    """Hold ``count`` streams; print "ready", then one line per round with the receipt times."""
    channels = [
        grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(math.ceil(count / STREAMS_PER_CHANNEL))
    ]
    request = pb.SubscribeEventsRequest(types=[SUCCEEDED])
    stubs = [pb_grpc.DecisioningServiceStub(channel) for channel in channels]
    calls: list[Any] = []
    receipts: list[dict[str, float]] = [{} for _ in range(count)]
    subscribed = 0
    all_subscribed = asyncio.Event()
    batch_subscribed = asyncio.Event()
    round_done: dict[str, asyncio.Event] = {}
    remaining: dict[str, int] = {}

    def seen(revision: str) -> None:
        remaining[revision] = remaining.get(revision, count) - 1
        if remaining[revision] == 0:
            round_done.setdefault(revision, asyncio.Event()).set()

    async def read(index: int) -> None:
        nonlocal subscribed
        call = calls[index]
        first = await call.read()
        assert first.event.type == pb.EVENT_TYPE_STATE
        subscribed += 1
        if subscribed == len(calls):
            batch_subscribed.set()
        if subscribed == count:
            all_subscribed.set()
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:
                return
            now = time.time()
            revision = response.event.artifact.revision
            if revision != '"rev-0"' and revision not in receipts[index]:
                receipts[index][revision] = now
                seen(revision)

    # Subscribe in batches: gRPC core refuses (CANCELLED) part of a burst of thousands of new streams
    # that the server has not accepted yet; real subscribers arrive spread out (and retry).
    tasks = []
    for start in range(0, count, SUBSCRIBE_BATCH):
        batch_subscribed.clear()
        for i in range(start, min(count, start + SUBSCRIBE_BATCH)):
            calls.append(stubs[i % len(stubs)].SubscribeEvents(request))
            tasks.append(asyncio.create_task(read(i)))
        await asyncio.wait_for(batch_subscribed.wait(), 60)
    await asyncio.wait_for(all_subscribed.wait(), 60)
    print(json.dumps({"ready": count}), flush=True)
    for k in range(1, rounds + 1):
        revision = f'"rev-{k}"'
        await asyncio.wait_for(round_done.setdefault(revision, asyncio.Event()).wait(), 120)
        print(json.dumps({"round": revision, "times": [r[revision] for r in receipts]}), flush=True)
    for call in calls:
        call.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()


class Workers:
    """The subscriber processes for one measurement."""

    def __init__(self, address: str, total: int, rounds: int) -> None:
        shares = [total // WORKERS + (1 if i < total % WORKERS else 0) for i in range(WORKERS)]
        self.procs = [
            subprocess.Popen(
                [sys.executable, __file__, "worker", address, str(n), str(rounds)],
                stdout=subprocess.PIPE,
                text=True,
                cwd=REPO,
            )
            for n in shares
            if n
        ]

    def line(self, proc: subprocess.Popen[str]) -> dict[str, Any]:
        assert proc.stdout is not None
        text = proc.stdout.readline()
        if not text:
            raise RuntimeError(f"subscriber worker exited with {proc.wait(timeout=30)}")
        return dict(json.loads(text))

    def wait_ready(self) -> None:
        for proc in self.procs:
            self.line(proc)

    def round_times(self) -> list[float]:
        times: list[float] = []
        for proc in self.procs:
            times.extend(self.line(proc)["times"])
        return times

    def stop(self) -> None:
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


# ---------------------------------------------------------------------------------------- measuring


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def status(address: str) -> pb.GetStatusResponse:
    with grpc.insecure_channel(address) as channel:
        return pb_grpc.DecisioningServiceStub(channel).GetStatus(pb.GetStatusRequest(), timeout=10)


def wait_for(check: Any, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def measure_targetd(n: int, rounds: int, tmp: Path) -> dict[str, Any]:
    cdn = Cdn(ARTIFACT.read_bytes())
    cmd = [
        sys.executable, "-m", "targetd_server.main", "serve", "--listen", "127.0.0.1:0",
        "--client", "bench", "--organization-id", "bench@AdobeOrg", "--decisioning-method", "on-device",
        "--artifact-location", cdn.url, "--polling-interval", "500", "--polling-interval-minimum", "500",
        "--heartbeat-interval", "600", "--data-dir", str(tmp / f"data-{n}"), "--log-level", "warning",
    ]  # fmt: skip
    server = ServerProcess("targetd", cmd, cwd=REPO, log=tmp / f"targetd-{n}.log").start()
    try:
        wait_for(lambda: status(server.address).ready, 60, "targetd ready")
        idle = rss_mb(server.pid)
        workers = Workers(server.address, n, rounds)
        workers.wait_ready()
        wait_for(lambda: status(server.address).subscriber_count == n, 60, "subscribers")
        loaded = rss_mb(server.pid)
        lasts, all_latencies = [], []
        cpu = cpu_seconds(server.pid)
        for k in range(1, rounds + 1):
            etag = f'"rev-{k}"'
            cdn.publish(etag)
            times = workers.round_times()
            t0 = cdn.first_sent[etag]
            latencies = [t - t0 for t in times]
            lasts.append(max(latencies))
            all_latencies.extend(latencies)
        cpu = cpu_seconds(server.pid) - cpu
        workers.stop()
        return summary("targetd", n, lasts, all_latencies, idle=idle, loaded=loaded, cpu=cpu)
    finally:
        server.stop()
        cdn.stop()


def measure_floor(n: int, rounds: int, tmp: Path) -> dict[str, Any]:
    server = ServerProcess(
        "floor", [sys.executable, __file__, "floor"], cwd=REPO, log=tmp / f"floor-{n}.log"
    ).start()
    try:
        idle = rss_mb(server.pid)
        workers = Workers(server.address, n, rounds)
        workers.wait_ready()
        loaded = rss_mb(server.pid)
        lasts, all_latencies = [], []
        cpu = cpu_seconds(server.pid)
        with grpc.insecure_channel(server.address) as channel:
            trigger = pb_grpc.DecisioningServiceStub(channel).GetStatus
            for _ in range(rounds):
                t0 = time.time()
                trigger(pb.GetStatusRequest(), timeout=30)
                latencies = [t - t0 for t in workers.round_times()]
                lasts.append(max(latencies))
                all_latencies.extend(latencies)
        cpu = cpu_seconds(server.pid) - cpu
        workers.stop()
        return summary("floor", n, lasts, all_latencies, idle=idle, loaded=loaded, cpu=cpu)
    finally:
        server.stop()


def summary(
    name: str, n: int, lasts: list[float], latencies: list[float], *, idle: float, loaded: float, cpu: float
) -> dict[str, Any]:
    return {
        "server": name,
        "subscribers": n,
        "rounds": len(lasts),
        "last_p50_ms": 1000 * percentile(lasts, 0.5),
        "last_p99_ms": 1000 * percentile(lasts, 0.99),
        "all_p50_ms": 1000 * percentile(latencies, 0.5),
        "all_p99_ms": 1000 * percentile(latencies, 0.99),
        "rss_idle_mb": idle,
        "rss_mb": loaded,
        "kb_per_subscriber": (loaded - idle) * 1024 / n,
        # server CPU over the rounds (includes polling and, for targetd, download + compile per change)
        "cpu_us_per_delivery": cpu * 1e6 / (n * len(lasts)),
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = "| N | server | last subscriber p50 | last p99 | all receipts p50 | all p99 | RSS idle | RSS with N | per subscriber | server CPU per delivery |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['subscribers']:,} | {r['server']} | {r['last_p50_ms']:.0f} ms | {r['last_p99_ms']:.0f} ms | "
            f"{r['all_p50_ms']:.0f} ms | {r['all_p99_ms']:.0f} ms | {r['rss_idle_mb']:.0f} MB | "
            f"{r['rss_mb']:.0f} MB | {r['kb_per_subscriber']:.1f} KB | {r['cpu_us_per_delivery']:.0f} µs |"
        )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        asyncio.run(worker_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "floor":
        asyncio.run(floor_main())
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="targetd-fanout-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            for measure in (measure_floor, measure_targetd):
                row = measure(n, args.rounds, Path(tmp))
                print(
                    f"  {row['server']:8} N={n:>6,}: last p50 {row['last_p50_ms']:.0f} ms, p99 {row['last_p99_ms']:.0f} ms",
                    file=sys.stderr,
                    flush=True,
                )
                rows.append(row)
    print(f"Fan-out of one artifact event ({os.cpu_count()} cores, {args.rounds} changes per N)\n")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
