"""targetd's handlers in-process, counted in instructions (valgrind's callgrind) instead of timed.

``python bench/instructions.py [--calls N] [--cases ...]`` runs the servicer in-process as ``handler.py``
does (the real ``TargetClient`` on the benchmark's artifact, its outbox in a temporary directory, its
Delivery API an unused loopback port) under ``valgrind --tool=callgrind`` twice per case — after a warm-up
of ``--warmup`` calls, once with no further calls and once with ``--calls`` more — and prints one JSON
object: user-space instructions per call (the difference of the two totals over ``--calls``), for each
case.

Why: on a shared 2-core machine the timed rows move by 10-30% between minutes, more than most changes to
the handler; instruction counts repeat to ~0.3% from run to run, so two commits can be compared
in one sitting (run this in each checkout). What they leave out: system calls (the outbox's commit, the
random ids), cache misses and gRPC itself — the timed rows of ``run.py`` / ``delivery.py`` stay the
measure of the goals. Needs ``valgrind`` on PATH (not a dependency of the project: the script says so and
exits 2 without it); ~1 minute per case on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cases

BENCH = Path(__file__).resolve().parent
_COLLECTED = re.compile(r"Collected : (\d+)")
_SERVE_FLAGS = [
    "--client", cases.CLIENT,
    "--organization-id", cases.ORGANIZATION_ID,
    "--decisioning-method", "on-device",
    "--telemetry-enabled", "false",
    "--polling-interval", "0",
    "--server-domain", "127.0.0.1:9",  # notifications stay in the outbox: nothing listens there
    "--secure", "false",
    "--log-level", "error",
    "--artifact-payload", f"@{cases.ARTIFACT}",
]  # fmt: skip


async def _inner(case: str, calls: int, data_dir: str) -> None:
    """The measured process: start the client, run ``calls`` calls of ``case``, stop."""
    import handler

    from targetd.v1 import decisioning_service_pb2 as pb
    from targetd_server.calls import TargetClient
    from targetd_server.config import add_arguments, load_settings
    from targetd_server.service.servicer import DecisioningServicer

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = load_settings(parser.parse_args([*_SERVE_FLAGS, "--data-dir", data_dir]), environ={})
    client = TargetClient(settings)
    ready = asyncio.Event()
    client.add_readiness_listener(lambda now: ready.set() if now else None)
    await client.start()
    try:
        await asyncio.wait_for(ready.wait(), 60.0)
        servicer = DecisioningServicer(client)
        context: Any = handler._Context()
        data = handler._requests(cases.load_artifact())[case]
        attributes = case == cases.ATTRIBUTES_1
        for _ in range(calls):
            if attributes:
                reply = await servicer.GetAttributes(pb.GetAttributesRequest.FromString(data), context)
            else:
                reply = await servicer.GetOffers(pb.GetOffersRequest.FromString(data), context)
            if not isinstance(reply, bytes):  # a checkout before 8ab5a15: its servicer returned messages
                reply.SerializeToString()
    finally:
        await client.stop()


def _count(case: str, calls: int) -> int:
    """User-space instructions of one whole measured process (valgrind's ``Collected``)."""
    with tempfile.TemporaryDirectory(prefix="targetd-instructions-") as tmp:
        done = subprocess.run(
            [
                "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                sys.executable, str(Path(__file__).resolve()), "--inner", case, "--calls", str(calls),
                "--data-dir", tmp,
            ],
            capture_output=True, text=True, timeout=1800, check=False, cwd=BENCH,
        )  # fmt: skip
    found = _COLLECTED.findall(done.stderr)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"valgrind run failed ({done.returncode}): {done.stderr[-2000:]}")
    return int(found[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls counted per case")
    parser.add_argument("--warmup", type=int, default=100, help="calls in both runs, not counted")
    parser.add_argument("--cases", nargs="*", default=list(cases.CASES), choices=cases.CASES)
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        asyncio.run(_inner(args.inner, args.calls, args.data_dir))
        return
    if shutil.which("valgrind") is None:
        print(json.dumps({"ok": False, "error": "valgrind is not installed (apt install valgrind)"}))
        sys.exit(2)
    results: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:  # the two runs of a case side by side
        for case in args.cases:
            short = pool.submit(_count, case, args.warmup)
            long = pool.submit(_count, case, args.warmup + args.calls)
            results[case] = {"instructions_per_call": round((long.result() - short.result()) / args.calls)}
    print(json.dumps({"ok": True, "calls": args.calls, "cases": results}))


if __name__ == "__main__":
    main()
