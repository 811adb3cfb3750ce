"""What one notification POST costs targetd: ``DeliveryApi.post`` against the loopback stand-in.

``python bench/post_cost.py [--number N]`` starts ``stub_delivery.py``, builds the display-notification
request of the benchmark's execute call with the engine (as the outbox would send it) and prints one JSON
object: CPU µs of this process per ``DeliveryApi.post`` (targetd's Delivery API client as configured, the
answer parsed), per ``DeliveryApi.send`` (what the outbox sender calls: the answer not parsed), and a bare
``urllib3.HTTPConnectionPool`` POST of the same JSON body (mapping included), for scale.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cases
import urllib3
from procs import ServerProcess

from targetd.v1 import delivery_pb2
from targetd_client.json_format import message_to_dict, parse_dict
from targetd_server.config import add_arguments, load_settings
from targetd_server.delivery.http import DeliveryApi
from targetd_server.engine import build_notification_request, compile_artifact, decide


def cpu_us(func: Callable[[], object], number: int) -> float:
    for _ in range(max(20, number // 10)):
        func()
    started = time.process_time()
    for _ in range(number):
        func()
    return (time.process_time() - started) / number * 1e6


def measure(number: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="targetd-post-") as tmp:
        stub = ServerProcess(
            "stub",
            [sys.executable, str(Path(__file__).with_name("stub_delivery.py"))],
            cwd=cases.REPO,
            log=Path(tmp) / "stub.log",
        ).start()
        try:
            parser = argparse.ArgumentParser()
            add_arguments(parser)
            flags = ["--client", cases.CLIENT, "--organization-id", cases.ORGANIZATION_ID]
            flags += ["--server-domain", stub.address, "--secure", "false"]
            settings = load_settings(parser.parse_args(flags), environ={})
            raw = cases.load_artifact()
            request = delivery_pb2.DeliveryRequest()
            parse_dict(cases.delivery_request(cases.EXECUTE_1, raw), request)
            result = decide(compile_artifact(raw), request, client=cases.CLIENT, telemetry_enabled=False)
            built = build_notification_request(result.request, result.notifications, [])
            if built is None:
                return {"ok": False, "error": "the execute decision produced no notification"}
            outbound = built
            body_bytes = len(json.dumps(message_to_dict(outbound), separators=(",", ":")))
            api = DeliveryApi(settings)
            as_configured = cpu_us(lambda: api.post(outbound, session_id="s", cluster=None), number)
            # What the outbox sender does: the same POST without parsing the answer.
            unparsed = cpu_us(lambda: api.send(outbound, session_id="s", cluster=None), number)
            host, port = stub.address.rsplit(":", 1)
            pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=1)

            def bare() -> None:
                body = json.dumps(message_to_dict(outbound), separators=(",", ":")).encode()
                reply = pool.request(
                    "POST",
                    "/rest/v1/delivery?imsOrgId=x&sessionId=s",
                    body=body,
                    headers={"Content-Type": "application/json"},
                )
                assert reply.status == 200

            bare_us = cpu_us(bare, number)
        finally:
            stub.stop()
    return {
        "ok": True,
        "body_bytes": body_bytes,
        "delivery_api_post_us": as_configured,
        "send_us": unparsed,
        "urllib3_pool_us": bare_us,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=500, help="POSTs timed per variant")
    args = parser.parse_args()
    print(json.dumps(measure(args.number)), flush=True)


if __name__ == "__main__":
    main()
