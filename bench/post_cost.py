"""What one notification POST costs targetd: ``DeliveryApi`` (aiohttp) against a loopback stub.

``python bench/post_cost.py [--number N] [--in-flight K]`` starts ``stub_delivery.py``, builds the
display-notification request of the benchmark's execute call with the engine (as the outbox would send it)
and prints one JSON object: CPU µs of this process per POST (process CPU time over ``N`` timed POSTs, after
a warm-up) for

* ``execute_us`` — ``DeliveryApi.execute``, the answer parsed (a server-side decision), sequential;
* ``send_async_us`` / ``send_async_inflight_us`` — ``DeliveryApi.send_async``, the answer not parsed (a
  notification), sequential and with ``K`` (64) in flight;
* ``notify_inflight_us`` — ``DeliveryApi.notify`` with ``K`` in flight, the body mapped per POST (the
  sender process's path: ``transport.Http1Client``);
* ``aiohttp_us`` / ``aiohttp_inflight_us`` — a bare ``aiohttp.ClientSession`` POST of the same JSON body
  (mapping included), for scale; ``aiohttp_trust_env_us`` — the same with ``trust_env=True`` (why targetd
  reads the proxy environment itself: two thread-pool hops per request).

Both the api and the bare session get ``K`` pooled connections, so ``K`` in flight means ``K`` on the wire.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import cases
from procs import ServerProcess

from targetd.json_format import message_to_dict, parse_dict
from targetd.v1 import delivery_pb2
from targetd_server.config import add_arguments, load_settings
from targetd_server.delivery.http import DeliveryApi
from targetd_server.engine import build_notification_request, compile_artifact, decide


async def cpu_us(call: Callable[[], Awaitable[object]], number: int, in_flight: int = 1) -> float:
    """Process CPU µs per ``call()`` over ``number`` calls, ``in_flight`` at a time (after a warm-up)."""

    async def worker(count: int) -> None:
        for _ in range(count):
            await call()

    async def run(total: int) -> None:
        share, extra = divmod(total, in_flight)
        await asyncio.gather(*(worker(share + (i < extra)) for i in range(in_flight)))

    await run(max(20 * in_flight, number // 10))
    started = time.process_time()
    await run(number)
    return (time.process_time() - started) / number * 1e6


async def bare_session(address: str, in_flight: int, *, trust_env: bool) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        f"http://{address}",
        connector=aiohttp.TCPConnector(limit=in_flight),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=trust_env,
    )


async def measure_with(stub: ServerProcess, number: int, in_flight: int) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = ["--client", cases.CLIENT, "--organization-id", cases.ORGANIZATION_ID]
    flags += ["--server-domain", stub.address, "--secure", "false"]
    flags += ["--delivery-pool-size", str(in_flight), "--outbox-concurrency", str(in_flight)]
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
    report: dict[str, Any] = {"ok": True, "body_bytes": body_bytes, "number": number, "in_flight": in_flight}

    api = DeliveryApi(settings)  # constructed on this loop, as the server does
    try:
        report["execute_us"] = await cpu_us(
            lambda: api.execute(outbound, session_id="s", cluster=None), number
        )
        report["send_async_us"] = await cpu_us(
            lambda: api.send_async(outbound, session_id="s", cluster=None, timeout=5.0), number
        )
        report["send_async_inflight_us"] = await cpu_us(
            lambda: api.send_async(outbound, session_id="s", cluster=None, timeout=5.0), number, in_flight
        )

        async def notify() -> None:
            body = json.dumps(message_to_dict(outbound), separators=(",", ":")).encode()
            await api.notify(body, session_id="s", cluster=None, timeout=5.0)

        report["notify_inflight_us"] = await cpu_us(notify, number, in_flight)
    finally:
        await api.aclose()

    for key, trust_env, flight in (
        ("aiohttp_us", False, 1),
        ("aiohttp_inflight_us", False, in_flight),
        ("aiohttp_trust_env_us", True, 1),
    ):
        session = await bare_session(stub.address, in_flight, trust_env=trust_env)

        async def bare(session: aiohttp.ClientSession = session) -> None:
            body = json.dumps(message_to_dict(outbound), separators=(",", ":")).encode()
            async with session.post(
                "/rest/v1/delivery?imsOrgId=x&sessionId=s",
                data=body,
                headers={"Content-Type": "application/json"},
            ) as reply:
                await reply.read()
                assert reply.status == 200

        try:
            report[key] = await cpu_us(bare, number, flight)
        finally:
            await session.close()
    return report


def measure(number: int, in_flight: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="targetd-post-") as tmp:
        stub = ServerProcess(
            "stub",
            [sys.executable, str(Path(__file__).with_name("stub_delivery.py"))],
            cwd=cases.REPO,
            log=Path(tmp) / "stub.log",
        ).start()
        try:
            return asyncio.run(measure_with(stub, number, in_flight))
        finally:
            stub.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2000, help="POSTs timed per variant")
    parser.add_argument("--in-flight", type=int, default=64, help="concurrent POSTs of the in-flight rows")
    args = parser.parse_args()
    print(json.dumps(measure(args.number, args.in_flight)), flush=True)


if __name__ == "__main__":
    main()
