"""What targetd's gRPC metrics and optional tracing cost per call (docs/operations.md).

``python bench/tracing_cost.py [--calls N]`` runs each mode in a fresh process (a tracer provider is
process-wide) and prints one JSON object of µs per call (median of 5 batches):

* ``grpc_*``: sequential unary calls (an empty reply) from a grpc.aio client to a grpc.aio server in the same
  process, on one event loop — a call's µs is the process's CPU time (both ends, every thread: the
  exporter's too), not wall time, so that other load on the machine does not count; ``bare`` has no interceptor,
  ``metrics`` targetd's metrics (the handler wrapped at registration, as in targetd), ``traced_0``/``traced_1`` add tracing's server interceptor with
  sampling ratio 0 (no span recorded: the cost of a call that is not sampled) and 1 (every call recorded and
  exported over OTLP/gRPC to a no-op collector on loopback, the batch processor on its thread);
* ``http_*``: sequential POSTs of aiohttp (targetd's transport) to a loopback aiohttp server, without and
  with tracing's trace config (ratio 1: a client span and the ``traceparent`` header on each).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from typing import Any

import grpc
from aiohttp import ClientSession, web

MODES = ("grpc_bare", "grpc_metrics", "grpc_traced_0", "grpc_traced_1", "http_plain", "http_traced_1")


def _tracing(ratio: float, endpoint: str) -> None:
    from targetd_server import tracing
    from targetd_server.config import Settings

    settings = Settings(
        client="c",
        organization_id="o",
        tracing=True,
        tracing_sample_ratio=ratio,
        tracing_endpoint=endpoint,
    )
    tracing.configure_tracing(settings)


async def _collector() -> tuple[grpc.aio.Server, int]:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    class Sink(trace_service_pb2_grpc.TraceServiceServicer):
        async def Export(self, request: Any, context: Any) -> Any:
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Sink(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def _batches(call: Any, calls: int) -> float:
    for _ in range(200):
        await call()
    medians = []
    for _ in range(5):
        started = time.process_time()  # CPU of the process (all its threads), not wall time
        for _ in range(calls):
            await call()
        medians.append((time.process_time() - started) / calls * 1e6)
    return statistics.median(medians)


async def _grpc(mode: str, calls: int) -> float:
    from targetd_server import tracing
    from targetd_server.service.rpc_metrics import MeteredRegistration

    collector, port = await _collector()
    if mode.startswith("grpc_traced"):
        _tracing(float(mode[-1]), f"http://127.0.0.1:{port}")
    interceptors: list[Any] = [] if mode == "grpc_bare" else [*tracing.server_interceptors()]

    async def empty(request: bytes, context: Any) -> bytes:
        return b""

    server = grpc.aio.server(interceptors=interceptors or None)
    handler: Any = grpc.unary_unary_rpc_method_handler(empty)
    registration: Any = server if mode == "grpc_bare" else MeteredRegistration(server)  # (as targetd)
    registration.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("bench.B", {"M": handler})])
    server_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server_port}") as channel:
        method: Any = channel.unary_unary("/bench.B/M")

        async def call() -> None:
            await method(b"", timeout=5)

        result = await _batches(call, calls)
    await server.stop(None)
    tracing.shutdown_tracing()
    await collector.stop(None)
    return result


async def _http(mode: str, calls: int) -> float:
    from targetd_server import tracing

    collector, port = await _collector()
    if mode == "http_traced_1":
        _tracing(1.0, f"http://127.0.0.1:{port}")

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="{}")

    app = web.Application()
    app.router.add_post("/rest/v1/delivery", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/rest/v1/delivery"
    async with ClientSession(trace_configs=tracing.http_trace_configs()) as session:

        async def call() -> None:
            async with session.post(url, data=b"{}") as reply:
                await reply.read()

        result = await _batches(call, calls)
    await runner.cleanup()
    tracing.shutdown_tracing()
    await collector.stop(None)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=MODES)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    if args.mode:
        runner = _grpc if args.mode.startswith("grpc") else _http
        print(json.dumps(round(asyncio.run(runner(args.mode, args.calls)), 1)))
        return
    results = {}
    for mode in MODES:
        out = subprocess.run(
            [sys.executable, __file__, "--mode", mode, "--calls", str(args.calls)],
            capture_output=True,
            text=True,
            check=True,
        )
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
