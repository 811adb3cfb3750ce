"""The metrics (grpc-ecosystem names and labels, targetd's own) and the admin HTTP port, on a real
in-process server on port 0 and a real aiohttp admin server on port 0."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import Gauge

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc
from targetd.v1 import delivery_pb2
from targetd_server import metrics
from targetd_server.config import Settings
from targetd_server.service import start_admin, start_server
from tests.conftest import CONFORMANCE
from tests.support import eventually_async

SERVICE = "targetd.v1.DecisioningService"
ARTIFACT = CONFORMANCE / "artifacts" / "TEST_ARTIFACT_AB_SIMPLE.json"


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    base: dict[str, Any] = {
        "client": "acmeclient",
        "organization_id": "1234567890@AdobeOrg",
        "listen": "127.0.0.1:0",
        "data_dir": str(tmp_path),
        "grace_period": 1.0,
    }
    return Settings(**{**base, **extra})


def _value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def _grpc(name: str, kind: str, service: str, method: str, **extra: str) -> float:
    return _value(name, grpc_type=kind, grpc_service=service, grpc_method=method, **extra)


async def test_grpc_metrics_count_every_rpc_type_and_rejected_calls(tmp_path: Path) -> None:
    running = await start_server(_settings(tmp_path, auth_token="s3cret"))
    token = (("authorization", "Bearer s3cret"),)
    unary = ("unary", SERVICE, "GetStatus")
    stream = ("server_stream", SERVICE, "SubscribeEvents")
    bidi = ("bidi_stream", "grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo")
    health = ("unary", "grpc.health.v1.Health", "Check")
    before = {
        "started": _grpc("grpc_server_started_total", *unary),
        "ok": _grpc("grpc_server_handled_total", *unary, grpc_code="OK"),
        "rejected": _grpc("grpc_server_handled_total", *unary, grpc_code="Unauthenticated"),
        "seconds": _grpc("grpc_server_handling_seconds_count", *unary),
        "received": _grpc("grpc_server_msg_received_total", *unary),
        "sent": _grpc("grpc_server_msg_sent_total", *unary),
        "stream_started": _grpc("grpc_server_started_total", *stream),
        "stream_sent": _grpc("grpc_server_msg_sent_total", *stream),
        "stream_canceled": _grpc("grpc_server_handled_total", *stream, grpc_code="Canceled"),
        "bidi_ok": _grpc("grpc_server_handled_total", *bidi, grpc_code="OK"),
        "bidi_received": _grpc("grpc_server_msg_received_total", *bidi),
        "bidi_sent": _grpc("grpc_server_msg_sent_total", *bidi),
        "health_ok": _grpc("grpc_server_handled_total", *health, grpc_code="OK"),
    }
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.DecisioningServiceStub(channel)
            await stub.GetStatus(pb.GetStatusRequest(), timeout=5, metadata=token)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetStatus(pb.GetStatusRequest(), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED

            events = stub.SubscribeEvents(pb.SubscribeEventsRequest(), metadata=token)
            first = await events.read()
            assert first is not grpc.aio.EOF
            events.cancel()

            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            replies = [
                reply
                async for reply in reflection.ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
                )
            ]
            assert len(replies) == 1
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)

        async def stream_ended() -> bool:
            return _grpc("grpc_server_handled_total", *stream, grpc_code="Canceled") == (
                before["stream_canceled"] + 1
            )

        await eventually_async(stream_ended)
    finally:
        await running.stop()

    assert _grpc("grpc_server_started_total", *unary) == before["started"] + 2
    assert _grpc("grpc_server_handled_total", *unary, grpc_code="OK") == before["ok"] + 1
    assert _grpc("grpc_server_handled_total", *unary, grpc_code="Unauthenticated") == before["rejected"] + 1
    assert _grpc("grpc_server_handling_seconds_count", *unary) == before["seconds"] + 2
    assert _grpc("grpc_server_msg_received_total", *unary) == before["received"] + 2
    assert _grpc("grpc_server_msg_sent_total", *unary) == before["sent"] + 1
    assert _grpc("grpc_server_started_total", *stream) == before["stream_started"] + 1
    assert _grpc("grpc_server_msg_sent_total", *stream) >= before["stream_sent"] + 1
    assert _grpc("grpc_server_handled_total", *bidi, grpc_code="OK") == before["bidi_ok"] + 1
    assert _grpc("grpc_server_msg_received_total", *bidi) == before["bidi_received"] + 1
    assert _grpc("grpc_server_msg_sent_total", *bidi) == before["bidi_sent"] + 1
    assert _grpc("grpc_server_handled_total", *health, grpc_code="OK") == before["health_ok"] + 1


async def test_decisions_artifact_fetches_and_build_info(tmp_path: Path) -> None:
    decisions = _value("targetd_decisions_total", method="on-device", mode="on-device")
    applied = _value("targetd_artifact_fetches_total", result="applied")
    running = await start_server(
        _settings(
            tmp_path, decisioning_method="on-device", artifact_location=str(ARTIFACT), polling_interval=0
        )
    )
    try:

        async def ready() -> bool:
            return running.client.ready

        await eventually_async(ready)
        request = delivery_pb2.DeliveryRequest(
            execute=delivery_pb2.ExecuteRequest(mboxes=[delivery_pb2.MboxRequest(name="simple", index=1)])
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            await pb_grpc.DecisioningServiceStub(channel).GetOffers(
                pb.GetOffersRequest(request=request), timeout=5
            )
        assert _value("targetd_decisions_total", method="on-device", mode="on-device") == decisions + 1
        assert _value("targetd_artifact_fetches_total", result="applied") == applied + 1
        assert metrics.REGISTRY.get_sample_value("targetd_artifact_revision") not in (None, 0.0)
        assert metrics.REGISTRY.get_sample_value("targetd_ready") == 1
        build = [
            sample
            for family in metrics.REGISTRY.collect()
            if family.name == "targetd_build_info"
            for sample in family.samples
        ]
        assert build and build[0].value == 1 and build[0].labels["version"]
    finally:
        await running.stop()
    # no dead metric: the old ones are gone
    names = {family.name for family in metrics.REGISTRY.collect()}
    assert not {"targetd_rpc_requests", "targetd_rpc_duration_seconds"} & names


def test_every_gauge_declares_a_live_multiprocess_mode() -> None:
    """The multiprocess rule of targetd_server.metrics, for every gauge of the registry (others' too)."""
    gauges = [c for c in metrics.REGISTRY._collector_to_names if isinstance(c, Gauge)]
    assert gauges
    for gauge in gauges:
        assert gauge._multiprocess_mode in metrics.LIVE_MODES, (
            f"{gauge._name}: give it a live multiprocess_mode (targetd_server/metrics.py)"
        )


async def test_admin_port_metrics_healthz_readyz_and_404(tmp_path: Path) -> None:
    running = await start_server(_settings(tmp_path))
    admin = await start_admin("127.0.0.1:0", metrics.REGISTRY, lambda: running.client.ready)
    base = f"http://127.0.0.1:{admin.port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/metrics") as reply:
                assert reply.status == 200
                assert reply.headers["Content-Type"].startswith("text/plain")
                body = await reply.text()
            assert "grpc_server_started_total" in body and "targetd_build_info" in body
            async with http.get(f"{base}/healthz") as reply:
                assert reply.status == 200
            async with http.get(f"{base}/readyz") as reply:
                assert reply.status == 200  # server-side: ready at once
            for path in ("/", "/metricsx", "/health"):
                async with http.get(base + path) as reply:
                    assert reply.status == 404, path
            await running.client.begin_shutdown()  # not ready any more
            async with http.get(f"{base}/readyz") as reply:
                assert reply.status == 503
            async with http.get(f"{base}/healthz") as reply:
                assert reply.status == 200
    finally:
        await admin.stop()
        await running.stop()


def test_recorded_rpc_metrics_reach_a_scrape_as_prometheus_would_record_them() -> None:
    """The handlers record into plain numbers (``metrics.RpcMetrics``); a collection of the registry adds
    them to the children, bucket by bucket, as ``Histogram.observe`` would have."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    rpc = metrics.rpc_metrics("unary", "test.Flush", "Observe")
    observed = [0.00005, 0.0001, 0.0003, 0.004, 0.004, 0.7, 11.0, 0.0]
    for seconds in observed:
        rpc.started.inc()
        rpc.seconds.observe(seconds)
        rpc.handled("OK").inc()
    rpc.handled("InvalidArgument").inc()
    reference = Histogram(
        "reference_seconds", "same buckets", buckets=metrics.GRPC_SECONDS._upper_bounds[:-1], registry=None
    )
    for seconds in observed:
        reference.observe(seconds)
    labels = {"grpc_type": "unary", "grpc_service": "test.Flush", "grpc_method": "Observe"}
    text = generate_latest(metrics.REGISTRY).decode()  # a scrape flushes first
    assert 'grpc_server_started_total{grpc_method="Observe"' in text
    assert _value("grpc_server_started_total", **labels) == len(observed)
    assert _value("grpc_server_handled_total", **labels, grpc_code="OK") == len(observed)
    assert _value("grpc_server_handled_total", **labels, grpc_code="InvalidArgument") == 1
    registry = CollectorRegistry()
    registry.register(reference)
    for bound in metrics.GRPC_SECONDS._upper_bounds:
        le = "+Inf" if bound == float("inf") else str(bound)
        expected = registry.get_sample_value("reference_seconds_bucket", {"le": le})
        assert _value("grpc_server_handling_seconds_bucket", **labels, le=le) == expected, le
    assert _value("grpc_server_handling_seconds_sum", **labels) == pytest.approx(sum(observed))
    # nothing is counted twice: a second collection adds nothing new
    assert _value("grpc_server_started_total", **labels) == len(observed)
