"""examples/python_client.py and the documented generic-tool calls (buf curl through server reflection) run
against a real targetd with the local edge stand-in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.delivery.support import EdgeProcess
from tests.support import REPO, TargetdProcess, eventually

BUF = Path(sys.executable).parent / "buf"


def test_python_example(server: TargetdProcess, edge: EdgeProcess) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "python_client.py")],
        env={**os.environ, "TARGETD_ADDRESS": server.address},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "client ready"
    assert lines[1].startswith("product1: ") and lines[1].endswith(" via on-device")
    assert lines[2] == "display notification sent"
    assert lines[3].startswith("home attributes: {")
    eventually(lambda: any(n["notification"].get("id") == "example-1" for n in edge.notifications()) or None)


def buf_curl(address: str, *args: str) -> str:
    result = subprocess.run(
        [str(BUF), "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_buf_curl_through_reflection(server: TargetdProcess) -> None:
    """The commands of docs/clients.md: list, GetStatus, GetOffers."""
    base = f"http://{server.address}"
    listed = buf_curl(server.address, "--list-methods", base).split()
    assert "targetd.v1.DecisioningService/GetOffers" in listed
    status = json.loads(buf_curl(server.address, f"{base}/targetd.v1.DecisioningService/GetStatus"))
    assert status["client"] == "acmeclient"
    body = '{"request": {"execute": {"mboxes": [{"name": "home", "index": 1}]}}}'
    offers = json.loads(
        buf_curl(server.address, "-d", body, f"{base}/targetd.v1.DecisioningService/GetOffers")
    )
    assert offers["envelope"]["response"]["execute"]["mboxes"][0]["name"] == "home"
