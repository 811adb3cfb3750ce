"""Closed-loop HTTP load generator for targetd's Delivery API over HTTP (``POST /rest/v1/delivery``):
``concurrency`` callers on one aiohttp session (keep-alive, at most ``concurrency`` connections), each
sending its next call as soon as the previous answer is read and parsed as JSON, as a real client does.
Runs as its own process (``bench/run.py`` starts one per measurement), like ``loadgen.py`` for gRPC, and
prints the same JSON object (requests/s, latency percentiles, errors by HTTP status, CPU per call).

``python bench/http_loadgen.py --address 127.0.0.1:PORT --request-file body.json --concurrency 8``.
Bounded: ``--warmup + --duration`` seconds of calls and at most ``--max-requests`` calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from loadgen import _cpu_snapshot, percentile

PATH = "/rest/v1/delivery?imsOrgId=bench%40AdobeOrg&sessionId=bench-session"
HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}


def _describe(answer: dict[str, Any], size: int) -> dict[str, Any]:
    mboxes = answer.get("execute", {}).get("mboxes", []) + answer.get("prefetch", {}).get("mboxes", [])
    return {
        "bytes": size,
        "decisions": len(mboxes),
        "with_options": sum(1 for m in mboxes if m.get("options")),
    }


async def run(args: argparse.Namespace, body: bytes) -> dict[str, Any]:
    url = f"http://{args.address}{PATH}"
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call() -> tuple[int, bytes]:
            async with session.post(url, data=body, headers=HEADERS) as reply:
                data = await reply.read()
                json.loads(data)
                return reply.status, data

        status, data = await call()
        if status != 200:
            return {"ok": False, "error": f"HTTP {status}: {data[:200]!r}"}
        first = _describe(json.loads(data), len(data))

        latencies: list[float] = []
        errors: Counter[str] = Counter()
        started = time.perf_counter()
        measure_from = started + args.warmup
        stop_at = measure_from + args.duration
        budget = [args.max_requests]
        total = [1]

        async def worker() -> None:
            while budget[0] > 0:
                budget[0] -= 1
                begin = time.perf_counter()
                if begin >= stop_at:
                    return
                total[0] += 1
                try:
                    code, _ = await call()
                except aiohttp.ClientError as error:
                    errors[type(error).__name__] += 1
                    continue
                if code != 200:
                    errors[f"HTTP {code}"] += 1
                    continue
                end = time.perf_counter()
                if begin >= measure_from and end <= stop_at:
                    latencies.append(end - begin)

        window: list[dict[str, float]] = []

        async def monitor() -> None:
            for moment in (measure_from, stop_at):
                await asyncio.sleep(max(0.0, moment - time.perf_counter()))
                window.append(_cpu_snapshot(args.server_pid, args.helper_pid))

        await asyncio.gather(monitor(), *(worker() for _ in range(args.concurrency)))
    elapsed = min(time.perf_counter(), stop_at) - measure_from
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    cpu = {k: window[1][k] - window[0][k] for k in window[0]} if len(window) == 2 else {}
    n = max(1, len(ms))
    return {
        "ok": not errors and bool(ms),
        "error": ", ".join(f"{k} x{v}" for k, v in errors.items()) or ("no calls timed" if not ms else ""),
        "kind": "http",
        "concurrency": args.concurrency,
        "request_bytes": len(body),
        "reply": first,
        "requests": len(ms),
        "calls_total": total[0],
        "seconds": round(elapsed, 4),
        "rps": len(ms) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "mean_ms": statistics.fmean(ms) if ms else float("nan"),
        "max_ms": ms[-1] if ms else float("nan"),
        "errors": dict(errors),
        "client_cpu_us": cpu.get("self", float("nan")) * 1e6 / n,
        "server_cpu_us": cpu.get("server", float("nan")) * 1e6 / n,
        "helper_cpu_us": cpu.get("helpers", float("nan")) * 1e6 / n,
        "other_cores": (cpu["processes"] - cpu["self"] - cpu.get("server", 0.0) - cpu.get("helpers", 0.0))
        / elapsed
        if cpu and elapsed > 0
        else float("nan"),
        "kernel_cores": cpu["kernel"] / elapsed if cpu and elapsed > 0 else float("nan"),
        "steal_cores": cpu["steal"] / elapsed if cpu and elapsed > 0 else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="targetd's HTTP host:port")
    parser.add_argument("--request-file", required=True, help="the Delivery request JSON body")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--server-pid", type=int, default=0, help="server process, for its CPU time")
    parser.add_argument("--helper-pid", type=int, action="append", default=[], help="bench helper process")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of calls before timing")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds timed")
    parser.add_argument("--max-requests", type=int, default=200_000, help="hard bound on calls")
    args = parser.parse_args()
    body = Path(args.request_file).read_bytes()
    print(json.dumps(asyncio.run(run(args, body))), flush=True)


if __name__ == "__main__":
    main()
