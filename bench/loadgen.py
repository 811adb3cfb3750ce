"""Closed-loop load generator: ``concurrency`` callers on one grpc.aio channel, each sending its next call as
soon as the previous one returns. Runs as its own process (``bench/run.py`` starts one per measurement).

``python bench/loadgen.py --address 127.0.0.1:PORT --kind get_offers --request-file req.bin
--concurrency 8 --warmup 1 --duration 3`` prints one JSON object: requests completed in the timed window,
requests/s, latency percentiles (ms), errors by status code and the client process's CPU seconds.

``--visitors N`` (get_offers) cycles the calls over ``N`` visitors, each with its own tntId (so that the
notifications of many calls cannot be merged into one request). ``--kind echo`` calls the floor server's ``/bench.Echo/Echo`` with the file's bytes; ``get_offers`` and
``get_attributes`` call targetd with the serialized request in the file and parse every response, as a real
client does. Bounded: ``--warmup + --duration`` seconds of calls and at most ``--max-requests`` calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc

ECHO_METHOD = "/bench.Echo/Echo"
KINDS = ("echo", "get_offers", "get_attributes")


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (``q`` in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def _pid_cpu(pid: int, ticks: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(stat[11]) + int(stat[12])) / ticks


def _kernel_threads_cpu(ticks: int) -> float:
    """CPU seconds of the kernel's own threads (children of kthreadd, e.g. writeback workers)."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat[1] == "2" or entry.name == "2":  # ppid kthreadd
            total += (int(stat[11]) + int(stat[12])) / ticks
    return total


def _cpu_snapshot(server_pid: int | None, helper_pids: list[int]) -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    kthreads = _kernel_threads_cpu(ticks)
    snapshot = {
        "self": usage.ru_utime + usage.ru_stime,
        "processes": (user + nice + system) / ticks - kthreads,
        "kernel": kthreads + (irq + softirq) / ticks,
        "steal": steal / ticks,
    }
    if server_pid:
        snapshot["server"] = _pid_cpu(server_pid, ticks)
    snapshot["helpers"] = sum(_pid_cpu(pid, ticks) for pid in helper_pids)
    return snapshot


def _caller(
    channel: grpc.aio.Channel, kind: str, payload: bytes, method: str, visitors: int = 0
) -> Callable[[], Awaitable[Any]]:
    if kind == "echo":
        echo: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)

        def call_echo() -> Awaitable[Any]:
            return echo(payload, timeout=10.0)

        return call_echo
    stub = pb_grpc.DecisioningServiceStub(channel)
    if kind == "get_offers":
        offers_request = pb.GetOffersRequest.FromString(payload)
        if visitors > 0:  # one request per visitor (its own tntId), cycled through
            variants = []
            for i in range(visitors):
                variant = pb.GetOffersRequest()
                variant.CopyFrom(offers_request)
                variant.request.id.tnt_id = f"{i:032x}"
                variants.append(variant)
            turn = iter(range(1 << 62))

            def call_visitor() -> Awaitable[Any]:
                return stub.GetOffers(variants[next(turn) % visitors], timeout=10.0)

            return call_visitor

        def call_offers() -> Awaitable[Any]:
            return stub.GetOffers(offers_request, timeout=10.0)

        return call_offers
    attributes_request = pb.GetAttributesRequest.FromString(payload)

    def call_attributes() -> Awaitable[Any]:
        return stub.GetAttributes(attributes_request, timeout=10.0)

    return call_attributes


def _describe(reply: Any) -> dict[str, Any]:
    """What the first successful reply contained, to show that the calls did real work."""
    if isinstance(reply, bytes):
        return {"bytes": len(reply)}
    if isinstance(reply, pb.GetOffersResponse):
        response = reply.envelope.response
        mboxes = list(response.execute.mboxes) + list(response.prefetch.mboxes)
        return {
            "bytes": reply.ByteSize(),
            "decisions": len(mboxes),
            "with_options": sum(1 for m in mboxes if m.options),
        }
    if isinstance(reply, pb.GetAttributesResponse):
        return {"bytes": reply.ByteSize(), "attribute_mboxes": sorted(reply.attributes)}
    return {}


async def run(args: argparse.Namespace, payload: bytes) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(args.address) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=10.0)
        call = _caller(channel, args.kind, payload, args.method, args.visitors)
        try:
            first = _describe(await call())
        except grpc.aio.AioRpcError as error:
            return {"ok": False, "error": f"{error.code().name}: {error.details()}"}

        latencies: list[float] = []
        errors: Counter[str] = Counter()
        started = time.perf_counter()
        measure_from = started + args.warmup
        stop_at = measure_from + args.duration
        budget = [args.max_requests]
        total = [1]  # every call made, the first one included (for server CPU per call)
        capped_at = [stop_at]  # when --max-requests ended the calls before the window's end

        async def worker() -> None:
            while True:
                if budget[0] <= 0:
                    capped_at[0] = min(capped_at[0], time.perf_counter())
                    return
                budget[0] -= 1
                begin = time.perf_counter()
                if begin >= stop_at:
                    return
                total[0] += 1
                try:
                    await call()
                except grpc.aio.AioRpcError as error:
                    errors[error.code().name] += 1
                    continue
                end = time.perf_counter()
                if begin >= measure_from and end <= stop_at:
                    latencies.append(end - begin)

        window: list[dict[str, float]] = []

        async def monitor() -> None:
            # CPU readings at the start and end of the timed window: this process, the server, the machine.
            for moment in (measure_from, stop_at):
                await asyncio.sleep(max(0.0, moment - time.perf_counter()))
                window.append(_cpu_snapshot(args.server_pid, args.helper_pid))

        await asyncio.gather(monitor(), *(worker() for _ in range(args.concurrency)))
    # the rate over the time calls were made: a long run that --max-requests cut short is not diluted
    elapsed = min(time.perf_counter(), stop_at, capped_at[0]) - measure_from
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    cpu = {k: window[1][k] - window[0][k] for k in window[0]} if len(window) == 2 else {}
    n = max(1, len(ms))
    return {
        "ok": not errors and bool(ms),
        "error": ", ".join(f"{k} x{v}" for k, v in errors.items()) or ("no calls timed" if not ms else ""),
        "kind": args.kind,
        "concurrency": args.concurrency,
        "request_bytes": len(payload),
        "reply": first,
        "requests": len(ms),
        "calls_total": total[0],
        "seconds": round(elapsed, 4),
        "capped": capped_at[0] < stop_at,
        "rps": len(ms) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "mean_ms": statistics.fmean(ms) if ms else float("nan"),
        "max_ms": ms[-1] if ms else float("nan"),
        "errors": dict(errors),
        # CPU µs per timed call over the timed window; "other" is what the rest of the machine used
        # (other processes, not this load generator or the server): a noisy-neighbour indicator, in cores.
        "client_cpu_us": cpu.get("self", float("nan")) * 1e6 / n,
        "server_cpu_us": cpu.get("server", float("nan")) * 1e6 / n,
        # The bench's helper processes (the Delivery API stand-in receiving targetd's notifications).
        "helper_cpu_us": cpu.get("helpers", float("nan")) * 1e6 / n,
        # Other user processes (not the kernel's threads: their work, e.g. writeback of the server's
        # SQLite writes, is mostly caused by what is measured; reported as kernel_cores).
        "other_cores": (cpu["processes"] - cpu["self"] - cpu.get("server", 0.0) - cpu.get("helpers", 0.0))
        / elapsed
        if cpu and elapsed > 0
        else float("nan"),
        "kernel_cores": cpu["kernel"] / elapsed if cpu and elapsed > 0 else float("nan"),
        "steal_cores": cpu["steal"] / elapsed if cpu and elapsed > 0 else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--method", default=ECHO_METHOD, help="path of the echo-kind method")
    parser.add_argument(
        "--request-file", required=True, help="request bytes (serialized protobuf or payload)"
    )
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument(
        "--visitors", type=int, default=0, help="get_offers: cycle over this many tntIds (0: the file's)"
    )
    parser.add_argument("--server-pid", type=int, default=0, help="server process, for its CPU time")
    parser.add_argument(
        "--helper-pid", type=int, action="append", default=[], help="bench helper process (not background)"
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of calls before timing")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds timed")
    parser.add_argument("--max-requests", type=int, default=200_000, help="hard bound on calls")
    args = parser.parse_args()
    payload = Path(args.request_file).read_bytes()
    print(json.dumps(asyncio.run(run(args, payload))), flush=True)


if __name__ == "__main__":
    main()
