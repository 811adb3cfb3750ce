"""The differential run: Adobe's Node SDK and targetd answer the same seeded random requests.

For each artifact: :mod:`generate` draws the cases; ``node_side.js`` runs them through
``@adobe/target-nodejs-sdk`` (on-device, ``artifactPayload``, clock fixed, notifications captured through
``fetchApi``); a real ``targetd serve`` (on-device, the same payload, ``fixed_clock``, telemetry off like
the Node side) answers them over gRPC, and its outbox delivers the display notifications to a loopback
HTTP stand-in that records the bodies. Then :func:`compare` puts each case's response, ``meta`` and
notification bodies side by side after :func:`normalise` (generated ids and timestamps only).

Telemetry is off on both sides: its entries hold measured durations, and targetd's outbox merges
telemetry-only requests (docs/remote.md); the telemetry payload is covered by the conformance suite.

``python tests/differential/run.py --count N [--seed S] [--artifact NAME]`` prints the agreement table
(``make differential N=…``); ``tests/differential/test_differential.py`` runs it in ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from targetd.json_format import js_string, message_to_dict, parse_dict  # noqa: E402
from targetd.v1 import decisioning_service_pb2 as pb  # noqa: E402
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc  # noqa: E402
from tests.differential.generate import generate  # noqa: E402
from tests.differential.known import known_node_bug  # noqa: E402
from tests.support import TargetdProcess, eventually  # noqa: E402

CONFORMANCE = REPO.parent / "shared" / "conformance"
CLIENT = "differential"
ORGANIZATION = "1234567890@AdobeOrg"
NOW_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z, a Tuesday
GENERATED_KEYS = frozenset({"requestId", "impressionId", "supplementalDataId"})
TIMESTAMP_KEYS = frozenset({"timestamp", "artifactLastRetrieved"})
# The gRPC API types parameters as strings (numbers and booleans are converted as JavaScript's String()
# does when a request is read); Node echoes the caller's values in trace.request as they came.
STRING_MAPS = frozenset({"parameters", "profileParameters"})

__all__ = ["ArtifactReport", "artifacts", "compare", "normalise", "run_artifacts"]


def artifacts() -> list[Path]:
    """The shared conformance suite's test artifacts and its ``artifact.json``."""
    return [*sorted((CONFORMANCE / "artifacts").glob("*.json")), CONFORMANCE / "artifact.json"]


def normalise(value: Any, parent: str = "") -> Any:
    """``value`` with generated ids and timestamps replaced by placeholders; nothing else changes.

    Generated: ``requestId``, notification ``id``/``impressionId``, ``supplementalDataId``, ``timestamp``,
    a ``tntId`` made up for a visitor who sent none (and the ``PC`` part of the ``mbox`` cookie then).
    Representation only: ``parameters``/``profileParameters`` values through JavaScript's ``String()``
    (the gRPC API types them as strings; Node's trace echoes a caller's number as a number).
    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in TIMESTAMP_KEYS and isinstance(item, int | float | str):
                out[key] = "<timestamp>"
            elif key in STRING_MAPS and isinstance(item, dict):
                out[key] = {
                    k: js_string(v) if isinstance(v, bool | int | float) else v for k, v in item.items()
                }
            elif isinstance(item, str) and (
                key in GENERATED_KEYS or (key == "id" and parent == "notifications")
            ):
                out[key] = "<id>"
            else:
                out[key] = normalise(item, key)
        return out
    if isinstance(value, list):
        return [normalise(item, parent) for item in value]
    return value


def _drop_empty_lists(value: Any) -> Any:
    """Proto3 repeated fields have no presence: an empty list and an absent key are the same answer."""
    if isinstance(value, dict):
        return {k: _drop_empty_lists(v) for k, v in value.items() if v != []}
    if isinstance(value, list):
        return [_drop_empty_lists(item) for item in value]
    return value


def _strip_generated_tnt(answer: Any, sent_tnt: bool) -> Any:
    if sent_tnt or not isinstance(answer, dict):
        return answer
    for holder in _dicts(answer):
        if isinstance(holder.get("tntId"), str):
            holder["tntId"] = "<generated>"
        if holder.get("name") == "mbox" and isinstance(holder.get("value"), str):
            holder["value"] = re.sub(r"PC#[^#|]+#", "PC#<generated>#", holder["value"])
    return answer


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _dicts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _dicts(item)


class _Capture(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CaptureHandler)
        self.lock = threading.Lock()
        self.bodies: list[dict[str, Any]] = []


class _CaptureHandler(BaseHTTPRequestHandler):
    server: _Capture

    def log_message(self, format: str, *args: Any) -> None:
        return

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError):  # targetd gave up waiting (it re-sends)
            super().handle()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        with self.server.lock:
            self.server.bodies.append(body)
        answer = json.dumps({"status": 200, "requestId": body.get("requestId"), "client": CLIENT}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@dataclass
class ArtifactReport:
    """Per artifact: how many cases agreed in full, in decisions, and the differences found."""

    artifact: str
    cases: int = 0
    agreed: int = 0
    decisions_agreed: int = 0
    node_answered: int = 0
    allowed: int = 0
    differences: list[str] = field(default_factory=list)


def _node(files: list[tuple[Path, Path]]) -> list[list[dict[str, Any]]]:
    """Run ``node_side.js`` once over every (cases, out) pair; the answers of each, in order."""
    args = [str(path) for pair in files for path in pair]
    completed = subprocess.run(
        ["node", str(HERE / "node_side.js"), *args],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=HERE,
        env={"TZ": "UTC", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"node_side.js failed: {completed.stderr[-4000:]}")
    return [json.loads(out.read_text(encoding="utf-8")) for _, out in files]


def _cookie(envelope: pb.TargetDeliveryResponse, name: str) -> dict[str, Any] | None:
    return message_to_dict(getattr(envelope, name)) if envelope.HasField(name) else None  # type: ignore[arg-type]


def _hint_cookie(envelope: pb.TargetDeliveryResponse) -> dict[str, Any]:
    cookie = _cookie(envelope, "target_location_hint_cookie")
    return {} if cookie is None else {"targetLocationHintCookie": cookie}


def _targetd(
    artifact: Path, cases: list[dict[str, Any]], workdir: Path, expected_bodies: Callable[[], int]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    capture = _Capture()
    thread = threading.Thread(target=capture.serve_forever, daemon=True)
    thread.start()
    port = capture.server_address[1]
    args = [
        "--client", CLIENT,
        "--organization-id", ORGANIZATION,
        "--decisioning-method", "on-device",
        "--artifact-payload", f"@{artifact}",
        "--polling-interval", "0",
        "--telemetry-enabled", "false",
        "--server-domain", f"127.0.0.1:{port}",
        "--edge-host-template", f"127.0.0.1:{port}",
        "--secure", "false",
        "--fixed-clock", str(NOW_MS),
        "--data-dir", str(workdir / "data"),
        "--outbox-flush-timeout", "60",
        "--log-level", os.environ.get("DIFFERENTIAL_LOG_LEVEL", "error"),
    ]  # fmt: skip
    answers: list[dict[str, Any]] = []
    try:
        with (
            TargetdProcess(args, env={"TZ": "UTC"}, start_timeout=90) as server,
            grpc.insecure_channel(server.address) as channel,
        ):
            stub = pb_grpc.DecisioningServiceStub(channel)

            def started() -> bool:  # ready, or the payload was refused (the calls then fail as in Node)
                status = stub.GetStatus(pb.GetStatusRequest(), timeout=5)
                return status.ready or bool(status.last_error.kind)

            eventually(started, timeout=90)
            for case in cases:
                call = pb.GetOffersRequest(session_id=case["sessionId"])
                try:
                    parse_dict(case["request"], call.request)
                    reply = stub.GetOffers(call, timeout=10)
                except (grpc.RpcError, ValueError) as exc:
                    details = exc.details() if isinstance(exc, grpc.RpcError) else f"PARSE: {exc}"
                    answers.append({"result": None, "error": details})
                    continue
                envelope = reply.envelope
                answers.append(
                    {
                        "result": {
                            "response": message_to_dict(envelope.response),
                            "meta": message_to_dict(envelope.meta),
                            "targetCookie": _cookie(envelope, "target_cookie"),
                            **_hint_cookie(envelope),
                        },
                        "error": None,
                    }
                )

            # Every row the outbox stored was delivered (a row is deleted only after a 2xx), and at least
            # as many as Node sent have arrived; a shortfall is reported by compare() after the timeout.
            least = expected_bodies()

            def delivered() -> bool:
                outbox = stub.GetStatus(pb.GetStatusRequest(), timeout=2).outbox
                with capture.lock:  # the start-up location-hint ping carries neither
                    arrived = sum(1 for b in capture.bodies if "notifications" in b or "telemetry" in b)
                return arrived >= least and outbox.stored == outbox.delivered <= arrived

            with contextlib.suppress(AssertionError):
                eventually(delivered, timeout=15)
            server.stop()
            if os.environ.get("DIFFERENTIAL_LOG_LEVEL"):
                sys.stderr.write(server.stderr())
    finally:
        capture.shutdown()
        capture.server_close()
    with capture.lock:
        return answers, list(capture.bodies)


def _by_case(bodies: list[dict[str, Any]], count: int) -> list[list[dict[str, Any]]]:
    grouped: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    seen: set[Any] = set()
    for body in bodies:
        # at-least-once: a row re-sent after a lost answer keeps its requestId (docs/remote.md)
        if body.get("requestId") in seen:
            continue
        seen.add(body.get("requestId"))
        position = ((body.get("context") or {}).get("window") or {}).get("width")
        if isinstance(position, int | float) and 0 <= position < count and position == int(position):
            grouped[int(position)].append(body)
    return grouped


def _decisions(result: dict[str, Any] | None) -> Any:
    """The decision part of an answer: per item its name, options and metrics (no trace)."""
    if result is None:
        return None
    response = result.get("response") or {}
    out: dict[str, Any] = {}
    for mode in ("execute", "prefetch"):
        part = response.get(mode) or {}
        items = []
        for kind in ("mboxes", "views"):
            for item in part.get(kind) or []:
                items.append((kind, item.get("name"), item.get("options"), item.get("metrics")))
        page = part.get("pageLoad")
        if page:
            items.append(("pageLoad", None, page.get("options"), page.get("metrics")))
        out[mode] = items
    return out


def _first_difference(left: Any, right: Any, path: str = "") -> str | None:
    if isinstance(left, dict) and isinstance(right, dict):
        for key in list(left) + [k for k in right if k not in left]:
            if key not in left or key not in right:
                side = "node only" if key in left else "targetd only"
                return f"{path}.{key}: {side}: {json.dumps(left.get(key, right.get(key)))[:300]}"
            found = _first_difference(left[key], right[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            return f"{path}: {len(left)} items (node) vs {len(right)} (targetd): {json.dumps(left)[:300]} vs {json.dumps(right)[:300]}"
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            found = _first_difference(a, b, f"{path}[{index}]")
            if found:
                return found
        return None
    if left != right:
        return f"{path}: {json.dumps(left)[:300]} (node) vs {json.dumps(right)[:300]} (targetd)"
    return None


def compare(
    cases: list[dict[str, Any]],
    node: list[dict[str, Any]],
    targetd: list[dict[str, Any]],
    targetd_bodies: list[dict[str, Any]],
    report: ArtifactReport,
) -> None:
    """Count full and decision agreement of each case into ``report``; record the differences."""
    grouped = _by_case(targetd_bodies, len(cases))
    for position, (case, ours) in enumerate(zip(cases, targetd, strict=True)):
        theirs = node[position]
        sent_tnt = bool((case["request"].get("id") or {}).get("tntId"))
        left = _drop_empty_lists(
            normalise(
                _strip_generated_tnt(
                    {
                        "result": theirs["result"],
                        "error": theirs["error"],
                        "notifications": theirs["notifications"],
                    },
                    sent_tnt,
                )
            )
        )
        right = _drop_empty_lists(
            normalise(
                _strip_generated_tnt(
                    {"result": ours["result"], "error": ours["error"], "notifications": grouped[position]},
                    sent_tnt,
                )
            )
        )
        if theirs["error"] and ours["error"] and ours["error"].startswith(theirs["error"]):
            right["error"] = left["error"]  # targetd says why after the SDK's own words
        report.cases += 1
        if theirs["result"] is not None:
            report.node_answered += 1
            if _decisions(left["result"]) == _decisions(right["result"]):
                report.decisions_agreed += 1
        difference = _first_difference(left, right)
        if difference is not None and (theirs["error"] or ours["error"]):
            difference += f" [errors: node {theirs['error']!r}, targetd {ours['error']!r}]"
        if difference is None:
            report.agreed += 1
            continue
        reason = known_node_bug(case, theirs)
        if reason is not None:
            report.allowed += 1
            continue
        report.differences.append(f"case {position}: {difference}\n  request: {json.dumps(case['request'])}")


def run_artifacts(chosen: list[Path], count: int, seed: int, workers: int = 3) -> list[ArtifactReport]:
    """For each artifact (the ``i``-th seeded ``seed + i``): generate ``count`` cases, answer them with the
    Node SDK (one process for all) and with targetd (one server per artifact, ``workers`` at a time),
    compare. See the module docstring."""
    with tempfile.TemporaryDirectory(prefix="targetd-differential-") as tmp:
        work = Path(tmp)
        jobs = []
        for index, artifact in enumerate(chosen):
            payload = json.loads(artifact.read_text(encoding="utf-8"))
            cases = generate(payload, count, seed + index)
            spec = {"client": CLIENT, "organizationId": ORGANIZATION, "nowMs": NOW_MS, "artifact": payload}
            cases_file = work / f"{index}-cases.json"
            cases_file.write_text(json.dumps({**spec, "cases": cases}), encoding="utf-8")
            jobs.append((artifact, cases, cases_file, work / f"{index}-node.json", work / f"targetd-{index}"))
        with ThreadPoolExecutor(max_workers=workers + 1) as pool:
            # Node answers everything in one process while the targetd servers answer theirs.
            node_run = pool.submit(_node, [(job[2], job[3]) for job in jobs])

            def expected(index: int) -> int:
                return sum(len(n["notifications"]) for n in node_run.result()[index])

            def ours(index: int) -> Any:
                artifact, cases, _, _, data = jobs[index]
                return _targetd(artifact, cases, data, lambda: expected(index))

            answers = list(pool.map(ours, range(len(jobs))))
            nodes = node_run.result()
    reports = []
    for job, node, (mine, bodies) in zip(jobs, nodes, answers, strict=True):
        report = ArtifactReport(job[0].stem)
        compare(job[1], node, mine, bodies, report)
        reports.append(report)
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=300, help="cases per artifact")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--artifact", action="append", help="artifact file stem (repeatable); default all")
    parser.add_argument("--show", type=int, default=5, help="differences printed per artifact")
    args = parser.parse_args(argv)
    chosen = [a for a in artifacts() if not args.artifact or a.stem in args.artifact]
    totals = ArtifactReport("total")
    print(f"{'artifact':40} {'cases':>6} {'full':>6} {'allowed':>7} {'decisions':>9}/{'node':<5}")
    for report in run_artifacts(chosen, args.count, args.seed):
        print(
            f"{report.artifact:40} {report.cases:6} {report.agreed:6} {report.allowed:7} "
            f"{report.decisions_agreed:9}/{report.node_answered:<5}"
        )
        for line in report.differences[: args.show]:
            print("   ", line)
        for name in ("cases", "agreed", "allowed", "decisions_agreed", "node_answered"):
            setattr(totals, name, getattr(totals, name) + getattr(report, name))
    full = (totals.agreed + totals.allowed) / max(totals.cases, 1)
    decisions = totals.decisions_agreed / max(totals.node_answered, 1)
    print(
        f"{'total':40} {totals.cases:6} {totals.agreed:6} {totals.allowed:7} "
        f"{totals.decisions_agreed:9}/{totals.node_answered:<5}"
    )
    print(
        f"full-answer agreement {full:.2%} (allow-listed Node bugs counted as agreed); decisions {decisions:.2%}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
