"""Sampling profiles of a running server with py-spy, summarised by function.

``bench/run.py --profile`` records the server (``py-spy record --format raw --nonblocking``) while an extra
load run is going on, keeps the collapsed stacks in ``bench/results/profile-<scenario>.txt`` (open them in
speedscope or flamegraph.pl) and prints where the samples were (self) and, for targetd's own code, the
share of samples under each function (inclusive). Frames inside grpc's Cython core show up as
``asyncio/events.py:Handle._run`` (callbacks run by the event loop) and ``threading.py:Thread.run`` (grpc's
poller thread): py-spy does not see into native code without ``--native``, which pauses the process.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# Frames of targetd's own code (the servicer and everything under it), as opposed to the grpc.aio/asyncio
# runtime that the floor server runs too; the outer frames (main, serve) are on every stack of the loop.
PROJECT = ("targetd_server/", "targetd_client/", "targetd/")
OUTER = ("targetd_server/main.py", "targetd_server/service/server.py")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def py_spy() -> str | None:
    """The py-spy executable next to this interpreter, or on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start(pid: int, out: Path, seconds: float, rate: int = 200) -> subprocess.Popen[str] | None:
    """Start recording ``pid`` for ``seconds`` into ``out`` (collapsed stacks); None without py-spy."""
    exe = py_spy()
    if exe is None:
        return None
    cmd = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(rate)]
    cmd += ["--format", "raw", "--output", str(out), "--nonblocking"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _short(frame: str, repo: Path) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    file = match["file"]
    for marker in (
        str(repo) + "/server/",
        str(repo) + "/api/python/src/",
        str(repo) + "/clients/python/src/",
        "site-packages/",
        "lib/python3",
    ):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    if file.startswith(".11/"):  # lib/python3.11/asyncio/... -> asyncio/...
        file = file[4:]
    return f"{file}:{match['func']}"


def summarise(collapsed: Path, repo: Path, top: int = 25) -> dict[str, Any]:
    """Sample counts per ``file:function`` from py-spy's raw (collapsed) output: self, inclusive, and
    inclusive restricted to targetd's own code, plus the share of samples inside targetd's code."""
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    project_counts: Counter[str] = Counter()
    handler = 0
    total = 0
    for line in collapsed.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f, repo) for f in stack.split(";") if f.strip()]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        unique = set(frames)
        for frame in unique:
            incl_counts[frame] += count
        mine = {f for f in unique if f.startswith(PROJECT) and not f.startswith(OUTER)}
        if mine:
            handler += count
            for frame in mine:
                project_counts[frame] += count

    def table(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": name, "samples": n, "percent": round(100 * n / total, 1) if total else 0.0}
            for name, n in counter.most_common(top)
        ]

    return {
        "samples": total,
        "handler_percent": round(100 * handler / total, 1) if total else 0.0,
        "self": table(self_counts),
        "inclusive": table(incl_counts),
        "project_inclusive": table(project_counts),
    }


def render(name: str, summary: dict[str, Any], top: int = 12) -> str:
    lines = [
        f"profile of the server during {name}: {summary['samples']} samples (py-spy, idle threads excluded); "
        f"{summary['handler_percent']}% inside targetd's own code, the rest in the grpc.aio/asyncio runtime"
    ]
    lines.append("  top self (where the samples were):")
    lines += [f"    {row['percent']:5.1f}%  {row['function']}" for row in summary["self"][:top]]
    if summary["project_inclusive"]:
        lines.append("  targetd code, inclusive (share of all samples under each function):")
        lines += [
            f"    {row['percent']:5.1f}%  {row['function']}" for row in summary["project_inclusive"][:top]
        ]
    return "\n".join(lines)
