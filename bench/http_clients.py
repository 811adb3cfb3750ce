"""Which HTTP client can carry the notification sender: CPU per POST and POSTs/s at a Delivery API round trip.

``python bench/http_clients.py [--number N] [--in-flight K] [--delay-ms MS]`` starts ``stub_delivery.py``
(answering after ``MS`` ms, default 50: an ordinary edge round trip) and POSTs the benchmark's display
notification (its Delivery API JSON, mapped once) ``N`` times with ``K`` in flight through each candidate,
on the standard asyncio loop and on uvloop. It prints one JSON object: per candidate, CPU µs of this
process per POST (process CPU time over the timed POSTs, after a warm-up) and POSTs/s (wall clock).

* ``aiohttp`` — an ``aiohttp.ClientSession`` with ``K`` pooled keep-alive connections (what
  ``transport.HttpClient`` is);
* ``http1`` — ``transport.Http1Client``: a bare ``asyncio.Protocol`` per connection, httptools parsing,
  ``K`` connections, one request at a time on each;
* ``h2_protocol`` — the h2 library's HTTP/2 state machine alone, in memory (no sockets, no loop): the client
  side of one POST (headers + data frames out, the answer's frames in). A floor for any h2-based client
  (httpx's included), before socket and loop costs.

Also ``mapping_us`` (``message_to_dict`` + ``json.dumps`` of the notification request, the sender's other
per-notification cost) and ``mapping_orjson_us`` (the same dict through orjson).
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
import orjson
import uvloop
from procs import ServerProcess
from yarl import URL

from targetd.json_format import message_to_dict, parse_dict
from targetd.v1 import delivery_pb2
from targetd_server.engine import build_notification_request, compile_artifact, decide
from targetd_server.transport import Http1Client

PATH = "/rest/v1/delivery?imsOrgId=BENCH%40AdobeOrg&sessionId=s"


def notification() -> delivery_pb2.DeliveryRequest:
    raw = cases.load_artifact()
    request = delivery_pb2.DeliveryRequest()
    parse_dict(cases.delivery_request(cases.EXECUTE_1, raw), request)
    result = decide(compile_artifact(raw), request, client=cases.CLIENT, telemetry_enabled=True)
    entries = [result.telemetry_entry] if result.telemetry_entry is not None else []
    built = build_notification_request(result.request, result.notifications, entries)
    assert built is not None
    return built


async def timed(call: Callable[[], Awaitable[object]], number: int, in_flight: int) -> dict[str, float]:
    async def worker(count: int) -> None:
        for _ in range(count):
            await call()

    async def run(total: int) -> None:
        share, extra = divmod(total, in_flight)
        await asyncio.gather(*(worker(share + (i < extra)) for i in range(in_flight)))

    await run(max(2 * in_flight, number // 10))
    cpu, wall = time.process_time(), time.perf_counter()
    await run(number)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_us": round(cpu / number * 1e6, 1), "per_s": round(number / wall)}


async def with_aiohttp(address: str, body: bytes, number: int, in_flight: int) -> dict[str, float]:
    session = aiohttp.ClientSession(
        f"http://{address}",
        connector=aiohttp.TCPConnector(limit=in_flight),
        cookie_jar=aiohttp.DummyCookieJar(),
    )

    async def post() -> None:
        async with session.post(PATH, data=body, headers={"Content-Type": "application/json"}) as reply:
            await reply.read()
            assert reply.status == 200

    try:
        return await timed(post, number, in_flight)
    finally:
        await session.close()


async def with_http1(address: str, body: bytes, number: int, in_flight: int) -> dict[str, float]:
    client = Http1Client(limit=in_flight, headers={"Content-Type": "application/json"})
    origin = Http1Client.origin(URL(f"http://{address}{PATH}", encoded=True))

    async def post() -> None:
        status, _ = await client.post(origin, PATH, body, timeout=10.0)
        assert status == 200

    try:
        return await timed(post, number, in_flight)
    finally:
        await client.aclose()


def h2_protocol_us(body: bytes, number: int) -> float:
    """CPU µs of the h2 client state machine per POST (the server side runs too, untimed)."""
    import h2.config
    import h2.connection
    import h2.events

    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    headers = [
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "edge.example"),
        (":path", PATH),
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
    ]
    answer = [(":status", "200"), ("content-type", "application/json"), ("content-length", "14")]
    spent = 0
    for _ in range(number):
        started = time.process_time_ns()
        stream = client.get_next_available_stream_id()
        client.send_headers(stream, headers)
        client.send_data(stream, body, end_stream=True)
        out = client.data_to_send()
        spent += time.process_time_ns() - started
        for event in server.receive_data(out):
            if isinstance(event, h2.events.DataReceived):
                server.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        server.send_headers(stream, answer)
        server.send_data(stream, b'{"status":200}', end_stream=True)
        back = server.data_to_send()
        started = time.process_time_ns()
        for event in client.receive_data(back):
            if isinstance(event, h2.events.DataReceived):
                client.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        update = client.data_to_send()
        spent += time.process_time_ns() - started
        server.receive_data(update)  # the client's window updates

    return round(spent / number / 1000, 1)


def mapping(request: delivery_pb2.DeliveryRequest, number: int) -> dict[str, float]:
    started = time.process_time()
    for _ in range(number):
        json.dumps(message_to_dict(request), separators=(",", ":")).encode()
    stdlib = (time.process_time() - started) / number * 1e6
    started = time.process_time()
    for _ in range(number):
        orjson.dumps(message_to_dict(request))
    fast = (time.process_time() - started) / number * 1e6
    return {"mapping_us": round(stdlib, 1), "mapping_orjson_us": round(fast, 1)}


def measure(number: int, in_flight: int, delay_ms: float) -> dict[str, Any]:
    request = notification()
    body = json.dumps(message_to_dict(request), separators=(",", ":")).encode()
    report: dict[str, Any] = {"body_bytes": len(body), "number": number, "in_flight": in_flight}
    report["delay_ms"] = delay_ms
    report.update(mapping(request, 5000))
    report["h2_protocol_us"] = h2_protocol_us(body, 5000)
    with tempfile.TemporaryDirectory(prefix="targetd-http-") as tmp:
        stub = ServerProcess(
            "stub",
            [sys.executable, str(Path(__file__).with_name("stub_delivery.py")), "--delay-ms", str(delay_ms)],
            cwd=cases.REPO,
            log=Path(tmp) / "stub.log",
        ).start()
        try:
            for name, runner in (("aiohttp", with_aiohttp), ("http1", with_http1)):
                for loop_name, run in (("asyncio", asyncio.run), ("uvloop", uvloop.run)):
                    report[f"{name}_{loop_name}"] = run(runner(stub.address, body, number, in_flight))
        finally:
            stub.stop()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="POSTs timed per candidate")
    parser.add_argument("--in-flight", type=int, default=512, help="concurrent POSTs (and connections)")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="the stand-in's answer delay")
    args = parser.parse_args()
    print(json.dumps(measure(args.number, args.in_flight, args.delay_ms)), flush=True)


if __name__ == "__main__":
    main()
