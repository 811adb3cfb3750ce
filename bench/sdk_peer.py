"""The peer: Adobe's ``target-python-sdk`` 1.1.0 on-device, in-process, on the same artifact and requests.

Runs in its own virtualenv (``bench/.venv-sdk``, made by ``bench/run.py`` with the dependencies of reference
§8), never in targetd's: ``bench/.venv-sdk/bin/python bench/sdk_peer.py [--repeat N] [--seconds S]``.
Set up as reference §9: ``TargetClient.create(on-device, artifact_payload, target_location_hint="28",
polling_interval=0)``, requests carry ``context.geo``, the engine's notification sender is a no-op (the
per-call ``Thread`` start is still counted). Prints one JSON object: per case, the median over ``--repeat``
timed batches of calls/s, decisions/s and µs per call, plus p50/p99 over all timed calls.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import cases

WARMUP_CALLS = 20


def _sdk_request(body: dict[str, Any]) -> Any:
    """The case's Delivery request as the SDK's ``delivery_api_client`` model."""
    api = importlib.import_module("delivery_api_client")
    ctx = body["context"]
    geo = ctx["geo"]
    context = api.Context(
        channel=ctx["channel"],
        address=api.Address(url=ctx["address"]["url"]),
        user_agent=ctx["userAgent"],
        geo=api.Geo(
            city=geo["city"],
            country_code=geo["countryCode"],
            state_code=geo["stateCode"],
            latitude=geo["latitude"],
        ),
    )
    kwargs: dict[str, Any] = {"context": context, "id": api.VisitorId(tnt_id=body["id"]["tntId"])}

    def mboxes(items: list[dict[str, Any]]) -> list[Any]:
        return [api.MboxRequest(name=m["name"], index=m["index"]) for m in items]

    if "execute" in body:
        kwargs["execute"] = api.ExecuteRequest(mboxes=mboxes(body["execute"]["mboxes"]))
    if "prefetch" in body:
        kwargs["prefetch"] = api.PrefetchRequest(mboxes=mboxes(body["prefetch"]["mboxes"]))
    return api.DeliveryRequest(**kwargs)


def _decisions(reply: Any) -> tuple[int, int]:
    """(decisions, decisions with options) of a get_offers reply."""
    response = reply["response"]
    found = list(getattr(response.execute, "mboxes", None) or []) if response.execute else []
    if response.prefetch:
        found += list(response.prefetch.mboxes or [])
    return len(found), sum(1 for m in found if m.options)


def _time_case(call: Callable[[], Any], repeat: int, seconds: float) -> dict[str, Any]:
    for _ in range(WARMUP_CALLS):
        call()
    batch_rates: list[float] = []
    batch_us: list[float] = []
    every: list[float] = []
    for _ in range(repeat):
        latencies: list[float] = []
        batch_start = time.perf_counter()
        deadline = batch_start + seconds
        while time.perf_counter() < deadline and len(latencies) < 100_000:
            begin = time.perf_counter()
            call()
            latencies.append(time.perf_counter() - begin)
        elapsed = time.perf_counter() - batch_start
        batch_rates.append(len(latencies) / elapsed)
        batch_us.append(statistics.median(latencies) * 1e6)
        every += latencies
    every.sort()
    return {
        "calls_per_s": statistics.median(batch_rates),
        "median_us": statistics.median(batch_us),
        "p50_ms": every[len(every) // 2] * 1000,
        "p99_ms": every[min(len(every) - 1, int(len(every) * 0.99))] * 1000,
        "calls": len(every),
        "batch_calls_per_s": [round(r, 2) for r in batch_rates],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed batches per case (median taken)")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one timed batch")
    parser.add_argument("--telemetry", choices=("true", "false"), default="false")
    parser.add_argument("--cases", default=",".join(cases.CASES), help="comma-separated case names")
    args = parser.parse_args()

    sdk = importlib.import_module("target_python_sdk")
    version = importlib.import_module("importlib.metadata").version("target-python-sdk")
    artifact = cases.load_artifact()
    ready: list[bool] = []
    started = time.perf_counter()
    client = sdk.TargetClient.create(
        {
            "client": cases.CLIENT,
            "organization_id": cases.ORGANIZATION_ID,
            "decisioning_method": "on-device",
            "artifact_payload": artifact,
            "target_location_hint": cases.LOCATION_HINT,
            "polling_interval": 0,
            "telemetry_enabled": args.telemetry == "true",
            "events": {"client_ready": lambda *_: ready.append(True)},
        }
    )
    create_ms = (time.perf_counter() - started) * 1000
    if not ready or client.decisioning_engine is None:
        print(json.dumps({"ok": False, "error": "the SDK's client never became ready"}))
        sys.exit(1)
    # Reference §9: display notifications would POST to Adobe's edge; replace the sender with a no-op.
    client.decisioning_engine.config.send_notification_func = lambda *_args, **_kw: None

    results: dict[str, Any] = {}
    for case in args.cases.split(","):
        request = _sdk_request(cases.delivery_request(case, artifact))
        call: Callable[[], Any]
        if case == cases.ATTRIBUTES_1:
            names = cases.attribute_mboxes(case)

            def call(names: list[str] = names, request: Any = request) -> Any:
                return client.get_attributes(names, {"request": request})

            provider = call()
            attributes = provider.as_object(names[0])
            decisions, with_options = 1, int(bool(attributes))
        else:

            def call(request: Any = request) -> Any:
                return client.get_offers({"request": request})

            first = call()
            decisions, with_options = _decisions(first)
            execute = first["response"].execute
            # Python SDK bug 0.5(d): an execute request also evaluates the global mbox (pageLoad).
            page_load_evaluated = bool(execute and getattr(execute, "page_load", None))
        timing = _time_case(call, args.repeat, args.seconds)
        timing["decisions_per_call"] = decisions
        if case != cases.ATTRIBUTES_1:
            timing["page_load_evaluated"] = page_load_evaluated
        timing["with_options"] = with_options
        timing["decisions_per_s"] = timing["calls_per_s"] * decisions
        results[case] = timing
    print(
        json.dumps(
            {
                "ok": True,
                "sdk_version": version,
                "python": sys.version.split()[0],
                "telemetry_enabled": args.telemetry == "true",
                "create_ms": create_ms,
                "cases": results,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
