"""The engine alone, in-process: µs per ``decide`` call for the benchmark's cases on one artifact.

``python bench/inproc.py [--artifact PATH] [--cases ...] [--repeat N] [--number N]`` prints one JSON object:
the artifact's compile time and size, and per case the median over ``--repeat`` timed batches of
``--number`` calls (after a warm-up) of µs per call and per decision. Uses the engine's public API
(``compile_artifact`` + ``decide``) with the exact requests the gRPC load uses (``bench/cases.py``) and the
server's settings (client code, location hint, telemetry off). ``get_attributes`` is timed as the
``decide`` it makes (the mbox added to execute); flattening the attributes is service work.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cases

from targetd.v1 import delivery_pb2
from targetd_client.json_format import parse_dict
from targetd_server.engine import compile_artifact, decide


def rss_mb() -> float:
    """This process's resident set size, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def median_us(func: Callable[[], object], repeat: int, number: int) -> tuple[float, list[float]]:
    for _ in range(max(number // 4, 10)):
        func()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            func()
        samples.append((time.perf_counter() - started) / number * 1e6)
    return statistics.median(samples), samples


def engine_request(case: str, artifact: dict[str, Any]) -> delivery_pb2.DeliveryRequest:
    body = cases.delivery_request(case, artifact)
    if case == cases.ATTRIBUTES_1:
        names = cases.attribute_mboxes(case)
        body["execute"] = {"mboxes": [{"name": n, "index": i} for i, n in enumerate(names, 1)]}
    request = delivery_pb2.DeliveryRequest()
    parse_dict(body, request)
    return request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", default=str(cases.ARTIFACT))
    parser.add_argument("--cases", default=",".join(cases.CASES), help="comma-separated case names")
    parser.add_argument("--repeat", type=int, default=7, help="timed batches per case (median taken)")
    parser.add_argument("--number", type=int, default=1000, help="calls per batch")
    args = parser.parse_args()

    path = Path(args.artifact)
    rss_start = rss_mb()
    started = time.perf_counter()
    raw = json.loads(path.read_text(encoding="utf-8"))
    load_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    artifact = compile_artifact(raw)
    compile_ms = (time.perf_counter() - started) * 1000
    rss_loaded = rss_mb()
    activities = {r["activityId"] for kind in raw["rules"].values() for rs in kind.values() for r in rs}
    results: dict[str, Any] = {}
    for case in args.cases.split(","):
        request = engine_request(case, raw)

        def call(request: delivery_pb2.DeliveryRequest = request) -> object:
            return decide(
                artifact,
                request,
                client=cases.CLIENT,
                telemetry_enabled=False,
            )

        result = decide(artifact, request, client=cases.CLIENT, telemetry_enabled=False)
        mboxes = list(result.response.execute.mboxes) + list(result.response.prefetch.mboxes)
        decisions = max(1, len(mboxes))
        per_call, samples = median_us(call, args.repeat, args.number)
        results[case] = {
            "us_per_call": per_call,
            "decisions_per_call": len(mboxes),
            "with_options": sum(1 for m in mboxes if m.options),
            "us_per_decision": per_call / decisions,
            "batch_us": [round(s, 2) for s in samples],
        }
    print(
        json.dumps(
            {
                "ok": True,
                "artifact": path.name,
                "artifact_bytes": path.stat().st_size,
                "activities": len(activities),
                "rules": artifact.rule_count,
                "json_load_ms": load_ms,
                "compile_ms": compile_ms,
                "rss_mb_before": rss_start,
                "rss_mb_loaded": rss_loaded,
                "cases": results,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
