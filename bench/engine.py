"""Benchmark of the on-device engine on ../shared/conformance/artifact.json.

Run from the repo root: ``.venv/bin/python bench/engine.py [--repeat N] [--number N]``.

Prints the median µs per ``decide`` call (median over ``--repeat`` timed batches of ``--number`` calls,
after a warm-up) for: execute 1 mbox, prefetch every mbox that has rules, a pageLoad execute. Requests carry
``context.geo`` (the artifact has geo targeting on, so no lookup is needed) and telemetry is on, as in the
SDK's default. It also times one artifact compile, and the two JSON Logic evaluators on the artifact's
conditions (this engine's closures vs ``datalogic-py``) so the choice documented in
``targetd_server.engine.jsonlogic`` can be re-checked.

Baseline: when the Adobe SDK peer's virtualenv exists (``bench/.venv-sdk``, made by ``make bench`` /
``bench/run.py``), Adobe's Python SDK is measured in the same run on the same artifact and requests
(``bench/sdk_peer.py``, telemetry on); otherwise the reference §9 figures are printed, labelled as such.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from inproc import median_us

from targetd.v1 import delivery_pb2
from targetd_client.json_format import parse_dict
from targetd_server.engine import compile_artifact, decide
from targetd_server.engine.context import base_context, mbox_params_context

ARTIFACT = Path(__file__).resolve().parents[1] / ".." / "shared" / "conformance" / "artifact.json"
CLIENT = "targettesting"
CONTEXT = {
    "channel": "web",
    "address": {"url": "http://local-target-test/"},
    "userAgent": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_3) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/80.0.3987.163 Safari/537.36"
    ),
    "geo": {"city": "SAN FRANCISCO", "countryCode": "US", "stateCode": "CA", "latitude": 37.75},
}
VISITOR = {"tntId": "338e3c1e51f7416a8e1ccba4f81acea0.28_0"}
ADOBE_PY_SDK_US = {"execute 1 mbox": 17820.2, "prefetch all rule mboxes": 49560.7, "pageLoad execute": None}
SDK_PYTHON = Path(__file__).resolve().parent / ".venv-sdk" / "bin" / "python"
SDK_PEER = Path(__file__).resolve().parent / "sdk_peer.py"


def _sdk_baseline(case_names: list[str], repeat: int) -> tuple[str, dict[str, float | None]]:
    """Adobe's SDK µs/call per case: measured now when its venv exists, else the reference figures."""
    reference = ("reference §9", {name: ADOBE_PY_SDK_US.get(name) for name in case_names})
    if not (SDK_PYTHON.exists() and SDK_PEER.exists()):
        return reference
    measured = [name for name in case_names if ADOBE_PY_SDK_US.get(name) is not None]
    command = [
        str(SDK_PYTHON),
        str(SDK_PEER),
        "--repeat",
        str(repeat),
        "--seconds",
        "1",
        "--telemetry",
        "true",
        "--cases",
        ",".join(measured),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
        report = json.loads(done.stdout.strip().splitlines()[-1])
        cases = report["cases"]
        return "measured now", {
            name: cases[name]["median_us"] if name in cases else None for name in case_names
        }
    except (subprocess.SubprocessError, OSError, ValueError, KeyError, IndexError):
        return reference


def _request(body: dict[str, Any]) -> delivery_pb2.DeliveryRequest:
    return parse_dict({"id": VISITOR, "context": CONTEXT, **body}, delivery_pb2.DeliveryRequest())


def _logic_comparison(raw: dict[str, Any], artifact: Any, repeat: int) -> tuple[float, float | None]:
    """µs to evaluate every mbox condition of the artifact once: closures vs datalogic-py."""
    request = _request({"execute": {"mboxes": [{"name": "x", "parameters": {"foo": "bar"}}]}})
    context = base_context(request, time.time_ns() // 1_000_000)
    context["mbox"] = mbox_params_context({"foo": "bar"})
    context["allocation"] = 42.0
    rules = [rule for group in artifact.mbox_rules.values() for rule in group]

    def closures() -> None:
        for rule in rules:
            rule.evaluate(context)

    closure_us = median_us(closures, repeat, 200)[0]
    try:
        import datalogic_py  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        return closure_us, None
    engine = datalogic_py.Engine()
    compiled = [
        engine.compile(rule["condition"]) for group in raw["rules"]["mboxes"].values() for rule in group
    ]

    def datalogic() -> None:
        for rule in compiled:
            rule.evaluate(context)

    return closure_us, median_us(datalogic, repeat, 200)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed batches per scenario (median taken)")
    parser.add_argument("--number", type=int, default=2000, help="calls per batch")
    args = parser.parse_args()

    raw = json.loads(ARTIFACT.read_text(encoding="utf-8"))
    started = time.perf_counter()
    compile_artifact(raw)
    first_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    artifact = compile_artifact(raw)
    compile_ms = (time.perf_counter() - started) * 1000
    rule_mboxes = sorted(artifact.mbox_rules)
    scenarios = {
        "execute 1 mbox": _request({"execute": {"mboxes": [{"name": "mbox-magician", "index": 1}]}}),
        "prefetch all rule mboxes": _request(
            {"prefetch": {"mboxes": [{"name": n, "index": i} for i, n in enumerate(rule_mboxes, 1)]}}
        ),
        "pageLoad execute": _request({"execute": {"pageLoad": {"parameters": {"foo": "bar"}}}}),
    }
    print(f"artifact: {ARTIFACT.name}, {artifact.rule_count} rules, {len(rule_mboxes)} mboxes with rules")
    print(
        f"compile_artifact: {compile_ms:.1f} ms per artifact "
        f"({first_ms:.1f} ms the first time: loads the public-suffix list)"
    )
    print(f"median of {args.repeat} x {args.number} calls, telemetry on, geo in the request")
    source, baseline = _sdk_baseline(list(scenarios), max(args.repeat // 2, 2))
    header = f"Adobe SDK µs/call ({source})"
    print(f"{'scenario':<28}{'µs/call':>10}{'decisions':>11}{'µs/decision':>13}{header:>34}")
    for name, request in scenarios.items():
        result = decide(artifact, request, client=CLIENT)
        decisions = len(result.response.execute.mboxes) + len(result.response.prefetch.mboxes)
        decisions += int(result.response.execute.HasField("page_load"))

        def call(r: delivery_pb2.DeliveryRequest = request) -> object:
            return decide(artifact, r, client=CLIENT)

        per_call = median_us(call, args.repeat, args.number)[0]
        adobe = baseline.get(name)
        adobe_text = f"{adobe:,.0f} ({adobe / per_call:,.0f}x)" if adobe else "n/a"
        print(f"{name:<28}{per_call:>10.1f}{decisions:>11}{per_call / decisions:>13.1f}{adobe_text:>34}")
    closure_us, datalogic_us = _logic_comparison(raw, artifact, args.repeat)
    print(f"JSON Logic, all {sum(len(g) for g in artifact.mbox_rules.values())} mbox conditions once:")
    print(f"  compiled closures: {closure_us:.1f} µs")
    if datalogic_us is not None:
        print(f"  datalogic-py (pre-compiled Rule.evaluate(dict)): {datalogic_us:.1f} µs")


if __name__ == "__main__":
    main()
