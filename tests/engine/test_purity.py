"""The engine and the pure modules of the application layer stay pure: no grpc import, no I/O (another
layer maps errors to status)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_engine_imports_no_grpc() -> None:
    code = (
        "import sys\n"
        "import targetd_server.engine, targetd_server.calls.envelope, targetd_server.calls.request\n"
        "from targetd_server.engine import decide, compile_artifact\n"
        "bad = sorted(m for m in sys.modules if m == 'grpc' or m.startswith('grpc.') or m.endswith('_pb2_grpc'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO, timeout=60
    )
    assert result.stdout.strip() == ""


def test_engine_sources_do_not_mention_grpc_or_io() -> None:
    sources = [*sorted((REPO / "server" / "targetd_server" / "engine").glob("*.py"))]
    calls = REPO / "server" / "targetd_server" / "calls"
    sources += [calls / "cookies.py", calls / "envelope.py", calls / "options.py"]
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for forbidden in (
            "import grpc",
            "_pb2_grpc",
            "import threading",
            "import socket",
            "open(",
            "logging",
        ):
            assert forbidden not in text, f"{path.name} uses {forbidden!r}"
