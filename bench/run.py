"""``make bench``: targetd against the gRPC floor and against Adobe's own SDK, in one run.

Starts, on loopback: a Delivery API/CDN stand-in (``stub_delivery.py``, so nothing leaves the machine), a
real ``targetd serve`` on-device with ``../shared/conformance/artifact.json`` (read in place), and the floor
server (``floor_server.py``: the same grpc.aio server and options, an echo handler). Load comes from
separate processes (``loadgen.py``), interleaving floor and targetd runs so both see the same machine. Then
Adobe's ``target-python-sdk`` 1.1.0 in its own virtualenv (``sdk_peer.py``), the engine alone
(``inproc.py``) and synthetic 10x/100x artifacts (``gen_artifact.py``). Prints one table of medians and
writes everything to ``bench/results/latest.json``. See ``bench/README.md`` for what each row means.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import cases
import grpc
import spy
from grpc_health.v1 import health_pb2, health_pb2_grpc
from procs import ServerProcess, rss_mb

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc
from targetd.v1 import delivery_pb2
from targetd_client.json_format import parse_dict

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
SDK_VENV = BENCH / ".venv-sdk"
# Reference §8: the SDK declares no dependencies; these are the ones it needs (setuptools for pkg_resources).
SDK_REQUIREMENTS = (
    "target-python-sdk==1.1.0",
    "pytz==2020.5",
    "tzlocal==2.1",
    "python-dateutil==2.8.1",
    "ua-parser==0.10.0",
    "user-agents==2.2.0",
    "json_logic_qubit==0.9.1",
    "tld==0.12.5",
    "six",
    "urllib3",
    "requests",
    "certifi",
    "setuptools<81",
)
ECHO_BYTES = 200
BURN_US = (50, 100)  # floor rows with this much handler work: the handler-time budget of the goals
SCALE_FACTORS = (1, 10, 100)

# Goals (issue 7).
GOAL_FLOOR_RPS = 0.8
GOAL_FLOOR_P99 = 1.5
GOAL_PEER = 30.0
GOAL_ENGINE_US = 50.0
GOAL_SCALE = 1.5
GOAL_IDLE_RSS_MB = 100.0


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ the peer venv


def ensure_sdk_venv() -> Path:
    """Create ``bench/.venv-sdk`` with the SDK and its real dependencies (once; a stamp records the list)."""
    python = SDK_VENV / "bin" / "python"
    stamp = SDK_VENV / ".bench-requirements"
    wanted = "\n".join(SDK_REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log(f"installing Adobe's SDK into {SDK_VENV.relative_to(REPO)} (once)")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(SDK_VENV)], check=True, timeout=300)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *SDK_REQUIREMENTS],
        check=True,
        timeout=900,
    )
    stamp.write_text(wanted)
    return python


# ------------------------------------------------------------------------------------------ helpers


def run_json(cmd: Sequence[str], timeout: float) -> dict[str, Any]:
    """Run a bench child process and parse the JSON object it prints last."""
    done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {
            "ok": False,
            "error": (done.stderr or done.stdout).strip()[-1500:] or f"exit {done.returncode}",
        }
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def canned_reply(address: str, request_file: Path) -> bytes:
    """targetd's GetOffers reply to the request in ``request_file`` (empty when it fails)."""
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.DecisioningServiceStub(channel)
        try:
            reply = stub.GetOffers(pb.GetOffersRequest.FromString(request_file.read_bytes()), timeout=10.0)
        except grpc.RpcError:
            return b""
    return reply.SerializeToString()


def wait_serving(address: str, timeout: float) -> bool:
    """Poll gRPC health until SERVING (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=2.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    return False


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if not math.isnan(v)]
    return statistics.median(clean) if clean else float("nan")


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "server", "bench"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    ).stdout.strip()
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "grpcio": version("grpcio"),
        "protobuf": version("protobuf"),
        "kernel": platform.release(),
        "commit": commit + ("+dirty" if dirty else ""),
    }


# ------------------------------------------------------------------------------------------ gRPC load


def request_files(tmp: Path, artifact: dict[str, Any]) -> dict[str, Path]:
    """Serialized request of each load kind/case, written once for the load generators."""
    files: dict[str, Path] = {}
    echo = tmp / "echo.bin"
    echo.write_bytes(b"x" * ECHO_BYTES)
    files["echo"] = echo
    for case in cases.CASES:
        body = cases.delivery_request(case, artifact)
        request = delivery_pb2.DeliveryRequest()
        parse_dict(body, request)
        message: pb.GetOffersRequest | pb.GetAttributesRequest
        if case == cases.ATTRIBUTES_1:
            message = pb.GetAttributesRequest(mbox_names=cases.attribute_mboxes(case), request=request)
        else:
            message = pb.GetOffersRequest(request=request)
        path = tmp / f"{case.replace(' ', '_')}.bin"
        path.write_bytes(message.SerializeToString())
        files[case] = path
        if case == cases.EXECUTE_1:  # the same request as Delivery API JSON, for the HTTP edge
            files["http " + case] = tmp / "execute_1.json"
            files["http " + case].write_text(json.dumps(body))
    return files


class Scenario:
    def __init__(
        self,
        key: str,
        label: str,
        server: ServerProcess,
        *,
        kind: str,
        file: Path,
        concurrency: int,
        method: str = "",
    ):
        self.key = key
        self.method = method
        self.label = label
        self.server = server
        self.kind = kind
        self.file = file
        self.concurrency = concurrency
        self.runs: list[dict[str, Any]] = []
        self.failed = ""
        self.address = ""  # another port of the server (the HTTP edge) instead of server.address

    def summary(self) -> dict[str, Any]:
        ok = [r for r in self.runs if r.get("ok")]
        out: dict[str, Any] = {
            "label": self.label,
            "kind": self.kind,
            "server": self.server.name,
            "concurrency": self.concurrency,
            "ok": bool(ok) and not self.failed,
            "error": self.failed,
            "runs": self.runs,
        }
        if ok:
            out.update(
                rps=median([r["rps"] for r in ok]),
                p50_ms=median([r["p50_ms"] for r in ok]),
                p99_ms=median([r["p99_ms"] for r in ok]),
                server_cpu_us=median([r["server_cpu_us"] for r in ok]),
                client_cpu_us=median([r["client_cpu_us"] for r in ok]),
                other_cores=median([r["other_cores"] for r in ok]),
                helper_cpu_us=median([r.get("helper_cpu_us", math.nan) for r in ok]),
                kernel_cores=median([r.get("kernel_cores", math.nan) for r in ok]),
                outbox_pending_after=median([r.get("outbox_pending_after", math.nan) for r in ok]),
                outbox_drain_s=median([r.get("outbox_drain_s", math.nan) for r in ok]),
                handler_us=median([r.get("handler_us", math.nan) for r in ok]),
                rps_min=min(r["rps"] for r in ok),
                rps_max=max(r["rps"] for r in ok),
                reply=ok[0].get("reply", {}),
            )
        return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def outbox_pending(metrics_address: str) -> float:
    """targetd's ``targetd_outbox_pending`` gauge (NaN if unreadable)."""
    try:
        with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return math.nan
    for line in text.splitlines():
        if line.startswith("targetd_outbox_pending "):
            return float(line.split()[1])
    return math.nan


def drain_outbox(server: ServerProcess, limit: float) -> tuple[float, float]:
    """Wait (at most ``limit`` s) until the server's outbox has sent its backlog, so that one run's
    notifications are not delivered during the next run; returns (rows pending at the start, seconds)."""
    started = time.monotonic()
    first = pending = outbox_pending(server.metrics_address)
    while pending > 0 and time.monotonic() - started < limit:
        time.sleep(0.1)
        pending = outbox_pending(server.metrics_address)
    return first, time.monotonic() - started


def handler_seconds(metrics_address: str) -> dict[str, tuple[float, float]]:
    """(sum, count) of targetd's handling-time histogram (grpc_server_handling_seconds) per method of
    targetd.v1.DecisioningService (empty if unreachable)."""
    try:
        with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return {}
    found: dict[str, list[float]] = {}
    for line in text.splitlines():
        for suffix, index in (("_sum{", 0), ("_count{", 1)):
            if line.startswith("grpc_server_handling_seconds" + suffix) and "DecisioningService" in line:
                method = line.split('grpc_method="', 1)[1].split('"', 1)[0]
                found.setdefault(method, [0.0, 0.0])[index] = float(line.rsplit(" ", 1)[1])
    return {method: (v[0], v[1]) for method, v in found.items()}


HELPER_PIDS: list[int] = []  # the Delivery API stand-in: its CPU is the bench's, not background load
_RETRY_SPENT = [0.0]  # seconds of load runs discarded so far (bounded by --retry-budget)


def run_scenario(scenario: Scenario, args: argparse.Namespace) -> None:
    """One load run; a run that other processes disturbed (more than ``--max-bg`` cores of their CPU during
    the timed window) is kept in the JSON as discarded and run again, up to ``--retries`` times and within
    ``--retry-budget`` seconds for the whole bench; a disturbed run that is kept is marked so."""
    attempts = 1 + getattr(args, "retries", 0)
    for attempt in range(attempts):
        started = time.monotonic()
        _run_once(scenario, args)
        last = scenario.runs[-1] if scenario.runs else {}
        disturbed = last.get("other_cores", 0.0) > getattr(args, "max_bg", 9.9)
        if scenario.failed or not last.get("ok") or not disturbed:
            return
        if attempt == attempts - 1 or _RETRY_SPENT[0] >= getattr(args, "retry_budget", 0.0):
            last["disturbed"] = f"other processes used {last['other_cores']:.2f} cores"
            return
        _RETRY_SPENT[0] += time.monotonic() - started
        last["ok"] = False
        last["discarded"] = f"other processes used {last['other_cores']:.2f} cores (attempt {attempt + 1})"
        log(f"  discarded: {last['discarded']}")


def _run_once(scenario: Scenario, args: argparse.Namespace) -> None:
    if scenario.failed:
        return
    metrics_address = scenario.server.metrics_address
    before = handler_seconds(metrics_address) if metrics_address else {}
    result = run_json(
        [
            sys.executable,
            *(
                [str(BENCH / "http_loadgen.py")]  # POST /rest/v1/delivery with the JSON body
                if scenario.kind == "http"
                else [str(BENCH / "loadgen.py"), "--kind", scenario.kind]
            ),
            "--address",
            scenario.address or scenario.server.address,
            *(["--method", scenario.method] if scenario.method else []),
            "--request-file",
            str(scenario.file),
            "--concurrency",
            str(scenario.concurrency),
            "--server-pid",
            str(scenario.server.pid),
            *[arg for pid in HELPER_PIDS for arg in ("--helper-pid", str(pid))],
            "--warmup",
            str(args.warmup),
            "--duration",
            str(args.duration),
        ],
        timeout=args.warmup + args.duration + 60,
    )
    if scenario.server.name == "targetd" and metrics_address:
        # The backlog this run left for the outbox sender, and how long the sender took to clear it.
        result["outbox_pending_after"], result["outbox_drain_s"] = drain_outbox(scenario.server, 15.0)
    if before:
        after = handler_seconds(metrics_address)
        method = "GetAttributes" if scenario.kind == "get_attributes" else "GetOffers"
        if method in after:
            calls = after[method][1] - before.get(method, (0.0, 0.0))[1]
            spent = after[method][0] - before.get(method, (0.0, 0.0))[0]
            # Wall time inside the servicer method (maps_errors' histogram): the handler's own cost.
            result["handler_us"] = spent / calls * 1e6 if calls else float("nan")
    scenario.runs.append(result)
    if not result.get("ok"):
        scenario.failed = str(result.get("error") or "failed")
        log(f"  {scenario.label} c={scenario.concurrency}: {scenario.failed[:200]}")
    else:
        log(
            f"  {scenario.label} c={scenario.concurrency}: {result['rps']:.0f} req/s, "
            f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, server {result['server_cpu_us']:.0f} µs/call, "
            f"other load {result['other_cores']:.2f} cores"
        )


def profile(scenarios: dict[str, Scenario], args: argparse.Namespace) -> dict[str, Any]:
    """One extra load run per ``--profile`` scenario with py-spy recording the server; summaries by key."""
    out: dict[str, Any] = {}
    for key in [k.strip() for k in args.profile.split(",") if k.strip()]:
        scenario = scenarios.get(key)
        if scenario is None:
            out[key] = {"error": f"no scenario {key!r}; choose from {', '.join(scenarios)}"}
            continue
        path = RESULTS / f"profile-{key.replace(' ', '-')}.txt"
        recorder = spy.start(scenario.server.pid, path, seconds=args.duration)
        if recorder is None:
            out[key] = {"error": "py-spy not installed (it is in the dev dependencies: make install)"}
            continue
        probe = Scenario(key, scenario.label, scenario.server, kind=scenario.kind, file=scenario.file,
                         concurrency=scenario.concurrency, method=scenario.method)  # fmt: skip
        run_scenario(probe, argparse.Namespace(warmup=0.0, duration=args.duration + 1.0))
        _, err = recorder.communicate(timeout=args.duration + 30)
        if recorder.returncode != 0 or not path.exists():
            out[key] = {"error": f"py-spy failed: {err.strip()[-500:]}"}
            continue
        summary = spy.summarise(path, REPO)
        summary["file"] = str(path.relative_to(REPO))
        summary["load"] = probe.runs[-1] if probe.runs else {}
        out[key] = summary
        log(f"profiled {key}: {summary['samples']} samples -> {summary['file']}")
    return out


# ------------------------------------------------------------------------------------------ the table


def fmt(value: Any, spec: str = ",.0f", missing: str = "—") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, spec)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


HEADER = (
    "#",
    "row",
    "c",
    "rate",
    "p50 ms",
    "p99 ms",
    "srv CPU µs",
    "handler µs",
    "stub µs",
    "kernel cores",
    "bg cores",
    "vs baseline",
    "goal",
)
_KEYS = (
    "section",
    "label",
    "c",
    "rate",
    "p50_ms",
    "p99_ms",
    "server_cpu",
    "handler",
    "stub",
    "kernel",
    "bg_cores",
    "vs_baseline",
    "goal",
)


def _row(section: str, label: str, rate: str = "", **cells: str) -> tuple[str, ...]:
    values = {"section": section, "label": label, "rate": rate, **cells}
    return tuple(values.get(key, "") for key in _KEYS)


def build_table(report: dict[str, Any]) -> str:
    rows: list[tuple[str, ...]] = [HEADER]
    grpc_rows = report["grpc"]
    order: tuple[str, ...] = ("floor c1", "floor c8", "canned c1", "canned c8")
    order += (*(f"burn{us} c{c}" for us in BURN_US for c in (1, 8)), "exec c1", "exec c8")
    order += ("http c1", "http c8", "deferred c1", "deferred c8")
    order += ("prefetch c1", "prefetch c8", "attrs c1", "attrs c8")
    for key in sorted(grpc_rows, key=lambda k: order.index(k) if k in order else len(order)):
        s = grpc_rows[key]
        section = "2" if s["server"].startswith("targetd") else "1"
        goal = s.get("goal", "")
        if not s["ok"]:
            rows.append(
                _row(
                    section,
                    s["label"],
                    "error",
                    c=str(s["concurrency"]),
                    vs_baseline=s["error"][:70],
                    goal=goal,
                )
            )
            continue
        vs = s.get("vs_floor")
        label = s["label"]
        decisions = s.get("reply", {}).get("decisions")
        if decisions and decisions > 1:
            label += f" ({decisions} dec/call = {s['rps'] * decisions:,.0f} dec/s)"
        rows.append(
            _row(
                section,
                label,
                fmt(s["rps"]) + " req/s",
                c=str(s["concurrency"]),
                p50_ms=fmt(s["p50_ms"], ".2f"),
                p99_ms=fmt(s["p99_ms"], ".2f"),
                server_cpu=fmt(s["server_cpu_us"], ",.0f"),
                handler=fmt(s.get("handler_us"), ",.0f", missing=""),
                stub=fmt(s.get("helper_cpu_us"), ",.0f", missing="") if s["server"] == "targetd" else "",
                kernel=fmt(max(0.0, s.get("kernel_cores", math.nan)), ".2f"),
                bg_cores=fmt(max(0.0, s.get("other_cores", math.nan)), ".2f"),  # ±0.05: tick rounding
                vs_baseline=f"{vs['rps']:.2f}x floor req/s, {vs['p99']:.2f}x floor p99"
                if vs
                else (
                    f"{s['vs_grpc']['rps']:.2f}x GetOffers req/s, {s['vs_grpc']['p99']:.2f}x its p99"
                    if "vs_grpc" in s
                    else ""
                ),
                goal=goal,
            )
        )
    peer = report["peer"]
    if peer.get("ok"):
        for case, p in peer["cases"].items():
            ratios = p.get("targetd_ratio", {})
            rows.append(
                _row(
                    "3",
                    f"Adobe SDK {peer['sdk_version']} in-process: {case}",
                    fmt(p["decisions_per_s"], ",.1f") + " dec/s",
                    c="1",
                    p50_ms=fmt(p["p50_ms"], ".2f"),
                    p99_ms=fmt(p["p99_ms"], ".2f"),
                    vs_baseline="targetd " + ", ".join(f"{c}: {r:,.0f}x" for c, r in ratios.items()),
                    goal=p.get("goal", ""),
                )
            )
    else:
        rows.append(_row("3", "Adobe SDK in-process", "error", vs_baseline=str(peer.get("error", ""))[:70]))
    engine = report["engine"]
    if engine.get("ok"):
        for case, e in engine["cases"].items():
            rows.append(
                _row(
                    "4",
                    f"engine in-process: {case} ({e['decisions_per_call']} dec)",
                    f"{e['us_per_call']:,.1f} µs/call",
                    c="1",
                    vs_baseline=f"{e['us_per_decision']:.1f} µs/decision",
                    goal=e.get("goal", ""),
                )
            )
    else:
        rows.append(_row("4", "engine in-process", "error", vs_baseline=str(engine.get("error", ""))[:70]))
    for size in report["scale"]:
        if not size.get("ok"):
            rows.append(
                _row("5", f"scale {size['factor']}x", "error", vs_baseline=str(size.get("error", ""))[:70])
            )
            continue
        e = size["cases"][cases.EXECUTE_1]
        rows.append(
            _row(
                "5",
                f"scale {size['factor']}x: {size['activities']:,} activities, {size['rules']:,} rules, "
                f"{size['artifact_bytes'] / 1e6:.1f} MB, compile {size['compile_ms']:,.0f} ms",
                f"{e['us_per_call']:,.1f} µs/call",
                c="1",
                vs_baseline=f"{size['vs_1x']:.2f}x the 1x time" if "vs_1x" in size else "",
                goal=size.get("goal", ""),
            )
        )
    memory = report.get("memory", {})
    floor_idle = fmt(memory.get("floor_idle_mb"), ".1f")
    rows.append(
        _row(
            "6",
            "targetd RSS idle, artifact loaded",
            fmt(memory.get("targetd_idle_mb"), ".1f") + " MB",
            vs_baseline=f"floor server idle: {floor_idle} MB",
            goal=memory.get("goal", ""),
        )
    )
    rows.append(
        _row(
            "6",
            "targetd RSS after the load",
            fmt(memory.get("targetd_after_load_mb"), ".1f") + " MB",
            vs_baseline=f"peak (VmHWM): {fmt(memory.get('targetd_peak_mb'), '.1f')} MB",
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    right = {2, 3, 4, 5, 6, 7, 8, 9, 10}
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat", type=int, default=5, help="repetitions of every measurement (median taken)"
    )
    parser.add_argument("--duration", type=float, default=3.0, help="timed seconds of one gRPC load run")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds before each gRPC load run")
    parser.add_argument("--sdk-seconds", type=float, default=2.0, help="length of one timed SDK batch")
    parser.add_argument("--engine-number", type=int, default=2000, help="engine calls per timed batch")
    parser.add_argument("--skip-sdk", action="store_true", help="leave out the Adobe SDK peer")
    parser.add_argument("--skip-scale", action="store_true", help="leave out the 10x/100x artifacts")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="floor c8,exec c8",
        default="",
        help="also record py-spy profiles of the server during these scenarios (default: 'floor c8,exec c8')",
    )
    parser.add_argument(
        "--max-bg",
        type=float,
        default=0.3,
        help="discard a run when other processes used more cores than this",
    )
    parser.add_argument("--retries", type=int, default=2, help="re-runs of a discarded run")
    parser.add_argument(
        "--retry-budget", type=float, default=150.0, help="seconds of re-runs at most, in the whole bench"
    )
    parser.add_argument("--readme", action="store_true", help="write the figures into bench/README.md")
    parser.add_argument("--out", default=str(RESULTS / "latest.json"), help="where to write the JSON")
    args = parser.parse_args()

    began = time.monotonic()
    RESULTS.mkdir(exist_ok=True)
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            "repeat": args.repeat,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "echo_bytes": ECHO_BYTES,
            "artifact": str(cases.ARTIFACT),
        },
    }
    sdk_python: Path | None = None
    sdk_error = "skipped (--skip-sdk)"
    if not args.skip_sdk:
        try:
            sdk_python = ensure_sdk_venv()
        except (subprocess.SubprocessError, OSError) as error:
            sdk_error = f"could not build {SDK_VENV.name}: {error}"
            log(sdk_error)
    artifact = cases.load_artifact()

    with tempfile.TemporaryDirectory(prefix="targetd-bench-") as tmp_name:
        tmp = Path(tmp_name)
        stub = ServerProcess(
            "stub", [sys.executable, str(BENCH / "stub_delivery.py")], cwd=REPO, log=tmp / "stub.log"
        ).start()
        HELPER_PIDS.append(stub.pid)
        common = [
            "--client", cases.CLIENT,
            "--organization-id", cases.ORGANIZATION_ID,
            "--decisioning-method", "on-device",
            "--telemetry-enabled", "false",
            "--polling-interval", "0",
            # Everything targetd sends (notifications, location hint, artifact) goes to the loopback stub.
            "--server-domain", stub.address,
            "--secure", "false",
            "--cdn-base-path", f"http://{stub.address}",
            "--log-level", "warning",
        ]  # fmt: skip
        metrics_address = f"127.0.0.1:{free_port()}"
        targetd = ServerProcess(
            "targetd",
            [
                sys.executable, "-m", "targetd_server.main", "serve", "--listen", "127.0.0.1:0", *common,
                "--artifact-payload", f"@{cases.ARTIFACT}", "--data-dir", str(tmp / "targetd-data"),
                "--metrics-listen", metrics_address,
                "--http-listen", (http_address := f"127.0.0.1:{free_port()}"),
            ],
            cwd=REPO,
            log=tmp / "targetd.log",
        )  # fmt: skip
        targetd.metrics_address = metrics_address
        # The same targetd with the Delivery API unreachable (a closed loopback port): display notifications
        # are still built and written to the outbox, but not sent (the sender backs off) - the like-for-like
        # counterpart of the SDK peer, whose notification sender is a no-op (reference §9).
        deferred = ServerProcess(
            "targetd-deferred",
            [
                sys.executable, "-m", "targetd_server.main", "serve", "--listen", "127.0.0.1:0", *common,
                "--artifact-payload", f"@{cases.ARTIFACT}", "--data-dir", str(tmp / "deferred-data"),
                "--server-domain", f"127.0.0.1:{free_port()}", "--outbox-max-rows", "10000000",
                "--metrics-listen", (deferred_metrics := f"127.0.0.1:{free_port()}"),
            ],
            cwd=REPO,
            log=tmp / "targetd-deferred.log",
        )  # fmt: skip
        deferred.metrics_address = deferred_metrics
        canned = tmp / "canned-offers.bin"
        floor = ServerProcess(
            "floor",
            [sys.executable, str(BENCH / "floor_server.py"), "--listen", "127.0.0.1:0", *common,
             "--data-dir", str(tmp / "floor-data"), "--canned-offers", str(canned),
             "--burn-us", ",".join(str(us) for us in BURN_US)],
            cwd=REPO,
            log=tmp / "floor.log",
        )  # fmt: skip
        servers = [targetd, deferred, floor]
        files = request_files(tmp, artifact)
        try:
            targetd.start()
            ready = wait_serving(targetd.address, timeout=30.0)
            report["targetd_ready"] = ready
            canned.write_bytes(canned_reply(targetd.address, files[cases.EXECUTE_1]))
            floor.start()
            deferred.start()
            wait_serving(deferred.address, timeout=30.0)
            log(
                f"targetd on {targetd.address} ({'SERVING' if ready else 'never SERVING'}), floor on {floor.address}"
            )
            time.sleep(2.0)  # settle before the idle reading
            memory: dict[str, Any] = {
                "targetd_idle_mb": rss_mb(targetd.pid),
                "floor_idle_mb": rss_mb(floor.pid),
            }

            scenarios: dict[str, Scenario] = {}

            def add(key: str, label: str, server: ServerProcess, kind: str, file: Path, c: int) -> None:  # noqa: PLR0917
                scenarios[key] = Scenario(key, label, server, kind=kind, file=file, concurrency=c)

            for c in (1, 8):
                add(f"floor c{c}", f"gRPC floor: echo {ECHO_BYTES} B", floor, "echo", files["echo"], c)
                add(f"canned c{c}", "floor with GetOffers messages (canned reply)", floor, "get_offers",
                    files[cases.EXECUTE_1], c)  # fmt: skip
                for us in BURN_US:
                    add(f"burn{us} c{c}", f"floor + {us} µs of Python in the handler", floor, "echo",
                        files["echo"], c)  # fmt: skip
                    scenarios[f"burn{us} c{c}"].method = f"/bench.Echo/Burn{us}"
                add(
                    f"exec c{c}",
                    "GetOffers on-device: execute 1 mbox",
                    targetd,
                    "get_offers",
                    files[cases.EXECUTE_1],
                    c,
                )
                add(f"deferred c{c}", "GetOffers execute 1 mbox, notification delivery deferred", deferred,
                    "get_offers", files[cases.EXECUTE_1], c)  # fmt: skip
                add(f"http c{c}", "POST /rest/v1/delivery execute 1 mbox on-device", targetd, "http",
                    files["http " + cases.EXECUTE_1], c)  # fmt: skip
                scenarios[f"http c{c}"].address = http_address
            for c in (1, 8):
                add(
                    f"prefetch c{c}",
                    "GetOffers on-device: prefetch all rule mboxes",
                    targetd,
                    "get_offers",
                    files[cases.PREFETCH_ALL],
                    c,
                )
            for c in (1, 8):
                add(
                    f"attrs c{c}",
                    "GetAttributes on-device: 1 mbox",
                    targetd,
                    "get_attributes",
                    files[cases.ATTRIBUTES_1],
                    c,
                )
            for rep in range(args.repeat):
                log(f"gRPC load, repetition {rep + 1}/{args.repeat}")
                for scenario in scenarios.values():
                    run_scenario(scenario, args)
            time.sleep(2.0)
            memory["targetd_after_load_mb"] = rss_mb(targetd.pid)
            if args.profile:
                report["profiles"] = profile(scenarios, args)
            status = Path(f"/proc/{targetd.pid}/status").read_text()
            peak = [line for line in status.splitlines() if line.startswith("VmHWM:")]
            memory["targetd_peak_mb"] = int(peak[0].split()[1]) / 1024 if peak else float("nan")
            memory["goal"] = verdict(memory["targetd_idle_mb"] <= GOAL_IDLE_RSS_MB if ready else None)
            report["memory"] = memory
        finally:
            for server in servers:
                server.stop()
            report["stub_requests"] = json.loads((stub.stop().strip().splitlines() or ["{}"])[-1])
            log_text = (tmp / "targetd.log").read_text(errors="replace")
            deferred_log = tmp / "targetd-deferred.log"
            both = log_text + (deferred_log.read_text(errors="replace") if deferred_log.exists() else "")
            report["targetd_log_tail"] = log_text[-3000:]
            # Everything should have gone to the loopback stand-in: name any other host targetd tried.
            hosts = set(re.findall(r"https?://([A-Za-z0-9.-]+)", both))
            report["external_hosts_attempted"] = sorted(
                h for h in hosts if h not in {"127.0.0.1", "localhost"}
            )

        grpc_report: dict[str, Any] = {key: s.summary() for key, s in scenarios.items()}
        for c in (1, 8):
            http_s, exec_s = grpc_report[f"http c{c}"], grpc_report[f"exec c{c}"]
            if http_s["ok"] and exec_s["ok"]:  # the HTTP edge beside the gRPC GetOffers row
                http_s["vs_grpc"] = {
                    "rps": http_s["rps"] / exec_s["rps"],
                    "p99": http_s["p99_ms"] / exec_s["p99_ms"],
                }
            floor_s = grpc_report[f"floor c{c}"]
            for key in (f"exec c{c}", f"deferred c{c}", f"prefetch c{c}", f"attrs c{c}"):
                s = grpc_report[key]
                if s["ok"] and floor_s["ok"]:
                    s["vs_floor"] = {"rps": s["rps"] / floor_s["rps"], "p99": s["p99_ms"] / floor_s["p99_ms"]}
            for e in (grpc_report[f"exec c{c}"], grpc_report[f"deferred c{c}"]):
                if "vs_floor" in e:
                    e["goal"] = verdict(
                        e["vs_floor"]["rps"] >= GOAL_FLOOR_RPS and e["vs_floor"]["p99"] <= GOAL_FLOOR_P99
                    )
                else:
                    e["goal"] = verdict(None)
        report["grpc"] = grpc_report

        # 2b. the same handlers in-process, without gRPC (timed, and profiled with cProfile)
        log("targetd handlers in-process (no gRPC), with cProfile")
        report["handler"] = run_json(
            [sys.executable, str(BENCH / "handler.py"), "--repeat", str(max(args.repeat, 3)),
             "--number", str(args.engine_number), *common, "--artifact-payload", f"@{cases.ARTIFACT}",
             "--data-dir", str(tmp / "handler-data")],
            timeout=600,
        )  # fmt: skip

        log("one notification POST: DeliveryApi (aiohttp) against the stand-in")
        report["post_cost"] = run_json([sys.executable, str(BENCH / "post_cost.py")], timeout=300)

        # 3. the peer
        if sdk_python is None:
            report["peer"] = {"ok": False, "error": sdk_error}
        else:
            log("Adobe SDK peer, in-process")
            peer = run_json(
                [str(sdk_python), str(BENCH / "sdk_peer.py"), "--repeat", str(args.repeat),
                 "--seconds", str(args.sdk_seconds), "--telemetry", "false"],
                timeout=900,
            )  # fmt: skip
            if peer.get("ok"):
                for case, p in peer["cases"].items():
                    key = {
                        cases.EXECUTE_1: "exec",
                        cases.PREFETCH_ALL: "prefetch",
                        cases.ATTRIBUTES_1: "attrs",
                    }[case]
                    ratios = {}
                    for c in (1, 8):
                        s = grpc_report[f"{key} c{c}"]
                        if s["ok"]:
                            decisions = s.get("reply", {}).get("decisions") or 1
                            ratios[f"c={c}"] = s["rps"] * decisions / p["decisions_per_s"]
                    if case == cases.EXECUTE_1:
                        # Like for like: the SDK's sender is a no-op, so is targetd's delivery here.
                        like = {}
                        for c in (1, 8):
                            s = grpc_report[f"deferred c{c}"]
                            if s["ok"]:
                                like[f"deferred c={c}"] = s["rps"] / p["decisions_per_s"]
                        ratios.update(like)
                        p["goal"] = verdict(min(like.values()) >= GOAL_PEER if len(like) == 2 else None)
                    p["targetd_ratio"] = ratios
            report["peer"] = peer

        # 4. the engine alone
        log("engine in-process")
        engine_cmd: Callable[[Path, str], list[str]] = lambda path, which: [  # noqa: E731
            sys.executable, str(BENCH / "inproc.py"), "--artifact", str(path), "--cases", which,
            "--repeat", str(max(args.repeat, 7)), "--number", str(args.engine_number),
        ]  # fmt: skip
        engine = run_json(engine_cmd(cases.ARTIFACT, ",".join(cases.CASES)), timeout=600)
        if engine.get("ok"):
            e1 = engine["cases"][cases.EXECUTE_1]
            e1["goal"] = verdict(e1["us_per_call"] <= GOAL_ENGINE_US)
        report["engine"] = engine

        # 5. scale
        scale: list[dict[str, Any]] = []
        if not args.skip_scale:
            for factor in SCALE_FACTORS:
                log(f"scale {factor}x")
                path = cases.ARTIFACT
                if factor != 1:
                    path = tmp / f"artifact-{factor}x.json"
                    made = run_json(
                        [
                            sys.executable,
                            str(BENCH / "gen_artifact.py"),
                            "--factor",
                            str(factor),
                            "--out",
                            str(path),
                        ],
                        timeout=600,
                    )
                    if "out" not in made:
                        scale.append({"factor": factor, "ok": False, "error": made.get("error", "")})
                        continue
                size = run_json(engine_cmd(path, cases.EXECUTE_1), timeout=900)
                size["factor"] = factor
                scale.append(size)
            base = scale[0] if scale and scale[0].get("ok") else None
            for size in scale:
                if size.get("ok") and base:
                    size["vs_1x"] = (
                        size["cases"][cases.EXECUTE_1]["us_per_call"]
                        / base["cases"][cases.EXECUTE_1]["us_per_call"]
                    )
                    if size["factor"] == max(SCALE_FACTORS):
                        size["goal"] = verdict(size["vs_1x"] <= GOAL_SCALE)
        report["scale"] = scale

    report["elapsed_s"] = round(time.monotonic() - began, 1)
    report["table"] = build_table(report)
    Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    text = render_report(report)
    print(text)
    print(f"({report['elapsed_s']:.0f} s; JSON: {os.path.relpath(args.out, REPO)})")
    if report.get("external_hosts_attempted"):
        print(
            f"WARNING: targetd tried to reach {', '.join(report['external_hosts_attempted'])}: see targetd_log_tail"
        )
    if args.readme:
        update_readme(text)
        log("bench/README.md: latest figures updated")


def render_report(report: dict[str, Any]) -> str:
    """The table with its header lines, the in-process handler breakdown and any py-spy summaries."""
    m = report["machine"]
    st = report["settings"]
    lines = [
        f"targetd bench {report['started_at']} · commit {m['commit']} · {m['cpus']} x {m['cpu']} · "
        f"Python {m['python']}, grpcio {m['grpcio']}, protobuf {m['protobuf']}",
        f"medians of {st['repeat']} runs; gRPC runs {st['duration_s']:g} s after {st['warmup_s']:g} s warm-up, "
        f"closed loop, load generator in its own process; artifact {Path(st['artifact']).name} on-device; "
        "telemetry off",
        report["table"],
    ]
    backlog = [
        f"{key}: {s['outbox_pending_after']:,.0f} rows, {s['outbox_drain_s']:.1f} s"
        for key, s in report.get("grpc", {}).items()
        if s.get("ok") and not math.isnan(s.get("outbox_pending_after", math.nan))
    ]
    if backlog:
        lines.append(
            "outbox backlog left by each targetd run (median), and the time its sender took to clear it:"
        )
        lines.append("  " + "; ".join(backlog))
    post = report.get("post_cost", {})
    if post.get("ok"):
        lines.append(
            f"one notification POST ({post['body_bytes']} B JSON) costs targetd {post['send_async_us']:.0f} µs "
            f"CPU (DeliveryApi.send_async; {post['send_async_inflight_us']:.0f} µs with {post['in_flight']} in "
            f"flight; {post['execute_us']:.0f} µs with the answer parsed; the sender's notify "
            f"{post.get('notify_inflight_us', float('nan')):.0f} µs in flight); a bare aiohttp session POST "
            f"{post['aiohttp_us']:.0f} µs "
            f"({post['aiohttp_inflight_us']:.0f} µs with {post['in_flight']} in flight)"
        )
    handler = report.get("handler", {})
    if handler.get("ok"):
        for case, h in handler["cases"].items():
            lines.append(
                f"targetd handler in-process, {case}: {h['us_per_call']:.0f} µs/call (parse {h['parse_us']:.1f}, "
                f"serialise {h['serialize_us']:.1f}, reply {h['reply_bytes']:,} B); cProfile own µs per call "
                f"(profiled total {h['profiled_us_per_call']:.0f}):"
            )
            lines.append(
                "  " + "; ".join(f"{r['function']} {r['own_us_per_call']:.1f}" for r in h["profile_own"][:8])
            )
    elif handler:
        lines.append(f"targetd handler in-process: {handler.get('error', '')[:300]}")
    for key, summary in report.get("profiles", {}).items():
        lines.append(
            spy.render(key, summary) if "samples" in summary else f"profile {key}: {summary['error']}"
        )
    return "\n".join(lines)


README_BEGIN = "<!-- bench:latest -->"
README_END = "<!-- /bench:latest -->"


def update_readme(text: str) -> None:
    """Replace the figures between the markers of bench/README.md with ``text`` (in a code block)."""
    path = BENCH / "README.md"
    readme = path.read_text(encoding="utf-8")
    if README_BEGIN not in readme or README_END not in readme:
        log(f"bench/README.md has no {README_BEGIN} ... {README_END} markers; not updated")
        return
    head, rest = readme.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    path.write_text(f"{head}{README_BEGIN}\n```\n{text}\n```\n{README_END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    main()
