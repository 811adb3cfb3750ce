"""Adobe's own Node SDK (``@adobe/target-nodejs-sdk`` 2.4.3, server-side mode, ``serverDomain`` = targetd's
HTTP address, ``secure: false``) against a real targetd process: getOffers gets on-device decisions (no
decision reaches the Delivery API stand-in), and both the outbox's display notifications of the executed
decision and the SDK's sendNotifications reach the stand-in (``targetd-edge``, a real process).

The SDK is the npm install shared with the differential test (``tests/differential``, ``npm ci`` from its
lock file; ``make test`` installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.delivery.support import CLIENT, ORG, EdgeProcess, http_json, targetd
from tests.support import REPO, eventually

NODE_MODULES = REPO / "tests" / "differential" / "node_modules"
SCRIPT = Path(__file__).with_name("node_sdk.js")


def _sdk_installed() -> None:
    package = NODE_MODULES / "@adobe" / "target-nodejs-sdk" / "package.json"
    assert shutil.which("node"), "node (>= 20) is required for this test"
    assert package.is_file(), f"{package} missing: run `make node-sdk` (npm ci in tests/differential)"
    assert json.loads(package.read_text())["version"] == "2.4.3"


def test_adobe_node_sdk_in_server_side_mode_gets_on_device_decisions(tmp_path: Path) -> None:
    _sdk_installed()
    with (
        EdgeProcess(tmp_path / "edge") as edge,
        targetd(edge, tmp_path / "targetd", "on-device", "--http-listen", "127.0.0.1:0") as process,
    ):
        assert process.proc is not None and process.proc.stdout is not None
        # The line right after the gRPC one (already in the pipe's buffer: serve() prints both at once).
        line = process.proc.stdout.readline()
        assert line.startswith("targetd http listening on "), line
        address = line.split()[-1]
        url = f"http://{address}/rest/v1/delivery?sessionId=probe"
        eventually(lambda: http_json("POST", url, {})["status"] == 200, timeout=20)
        edge.call("DELETE", "/_edge/notifications")

        done = subprocess.run(
            ["node", str(SCRIPT), address, ORG, CLIENT],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
            check=False,
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)

        response = result["offers"]["response"]
        (home,) = response["execute"]["mboxes"]
        (product,) = response["prefetch"]["mboxes"]
        assert home["name"] == "home" and product["name"] == "product1"
        for mbox in (home, product):
            assert mbox["options"], mbox
            for option in mbox["options"]:
                assert option["responseTokens"]["activity.decisioningMethod"] == "on-device"
        assert result["offers"]["meta"]["decisioningMethod"] == "server-side"  # as the SDK sees it
        assert edge.decision_requests() == []  # decided by targetd, not forwarded

        received = edge.wait_notifications(2)
        by_id = {r["notification"]["id"]: r["notification"] for r in received}
        assert by_id["node-display-1"]["mbox"]["name"] == "product1"  # the SDK's sendNotifications
        outbox = [n for key, n in by_id.items() if key != "node-display-1"]
        assert [n["mbox"]["name"] for n in outbox] == ["home"]  # the executed decision's display
        assert result["notified"]["response"]["status"] == 200
