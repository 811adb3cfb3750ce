"""OpenTelemetry tracing of a real ``targetd serve`` child process: its spans reach a real OTLP/gRPC
collector stand-in on loopback, the caller's trace is continued, and the trace context goes on to the
Delivery API (a loopback aiohttp stand-in) in ``traceparent``."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc
from targetd.v1 import delivery_pb2
from tests.support import TargetdProcess, eventually_async

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[tuple[str, str]] = []  # (trace id hex, span name)

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.spans += [(span.trace_id.hex(), span.name) for span in scope.spans]
        return trace_service_pb2.ExportTraceServiceResponse()


async def test_spans_are_exported_and_the_trace_goes_on_to_the_delivery_api(tmp_path: Any) -> None:
    collector = _Collector()
    otlp = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, otlp)  # type: ignore[no-untyped-call]
    otlp_port = otlp.add_insecure_port("127.0.0.1:0")
    await otlp.start()

    seen: list[str] = []

    async def delivery(request: web.Request) -> web.Response:
        seen.append(request.headers.get("traceparent", ""))
        body = {"status": 200, "requestId": "r1", "client": "acmeclient", "id": {"tntId": "t1"}}
        return web.json_response(body)

    app = web.Application()
    app.router.add_post("/rest/v1/delivery", delivery)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    delivery_port = runner.addresses[0][1]

    args = [
        *("--client", "acmeclient", "--organization-id", "1234567890@AdobeOrg", "--data-dir", str(tmp_path)),
        *("--server-domain", f"127.0.0.1:{delivery_port}", "--secure", "false", "--grace-period", "1"),
        *("--tracing", "true", "--tracing-endpoint", f"http://127.0.0.1:{otlp_port}"),
        *("--tracing-sample-ratio", "0"),  # new traces: none; the caller's sampled trace: followed
    ]
    server = await asyncio.to_thread(TargetdProcess(args, env={"OTEL_BSP_SCHEDULE_DELAY": "50"}).start)
    try:
        request = delivery_pb2.DeliveryRequest(
            execute=delivery_pb2.ExecuteRequest(mboxes=[delivery_pb2.MboxRequest(name="home", index=1)])
        )
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.DecisioningServiceStub(channel)
            await stub.GetOffers(
                pb.GetOffersRequest(request=request), timeout=10, metadata=(("traceparent", CALLER),)
            )
            await stub.GetStatus(pb.GetStatusRequest(), timeout=10)  # a new trace: not sampled (ratio 0)
        assert len(seen) == 1 and seen[0].startswith(f"00-{TRACE_ID}-"), seen
        assert not seen[0].endswith("00f067aa0ba902b7-01"), "the Delivery API call is a child span"

        async def exported() -> bool:
            names = {name for trace_id, name in collector.spans if trace_id == TRACE_ID}
            assert "/targetd.v1.DecisioningService/GetOffers" in names, collector.spans
            assert any(name.startswith("POST") for name in names), names
            return True

        await eventually_async(exported)
        assert all(trace_id == TRACE_ID for trace_id, _ in collector.spans), "GetStatus was not sampled"
    finally:
        await asyncio.to_thread(server.stop)
        for stream in (server.proc.stdout, server.proc.stderr) if server.proc else ():
            if stream:
                stream.close()
        await runner.cleanup()
        await otlp.stop(None)
