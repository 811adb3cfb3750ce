"""Token auth, TLS / mTLS, message-size limits and metrics, on a real in-process server on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc
from targetd_server import metrics
from targetd_server.config import Settings
from targetd_server.service.server import RunningServer, start_server


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    base: dict[str, Any] = {
        "client": "acmeclient",
        "organization_id": "1234567890@AdobeOrg",
        "listen": "127.0.0.1:0",
        "data_dir": str(tmp_path),
        "grace_period": 1.0,
    }
    return Settings(**{**base, **extra})


@pytest.fixture
async def token_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start_server(_settings(tmp_path, auth_token="s3cret"))
    yield running
    await running.stop()


async def test_token_auth_guards_rpcs_but_not_health(token_server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{token_server.port}") as channel:
        stub = pb_grpc.DecisioningServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetStatus(pb.GetStatusRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "authorization: Bearer" in (info.value.details() or "")

        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetStatus(
                pb.GetStatusRequest(), timeout=5, metadata=(("authorization", "Bearer nope"),)
            )
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED

        status = await stub.GetStatus(
            pb.GetStatusRequest(), timeout=5, metadata=(("authorization", "Bearer s3cret"),)
        )
        assert status.client == "acmeclient"

        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_streaming_rpc_is_guarded_too(token_server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{token_server.port}") as channel:
        stub = pb_grpc.DecisioningServiceStub(channel)
        call = stub.SubscribeEvents(pb.SubscribeEventsRequest(), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in call:
                pass
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_tls_and_mutual_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("localhost", "127.0.0.1")
    cert, key, ca_pem = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    server_cert.cert_chain_pems[0].write_to_path(str(cert))
    server_cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_pem))
    client_cert = ca.issue_cert("client@example")

    running = await start_server(
        _settings(tmp_path, tls_cert=str(cert), tls_key=str(key), tls_client_ca=str(ca_pem))
    )
    try:
        options = (("grpc.ssl_target_name_override", "localhost"),)
        # With a client certificate from the trusted CA: accepted.
        good = grpc.ssl_channel_credentials(
            root_certificates=ca.cert_pem.bytes(),
            private_key=client_cert.private_key_pem.bytes(),
            certificate_chain=client_cert.cert_chain_pems[0].bytes(),
        )
        async with grpc.aio.secure_channel(f"127.0.0.1:{running.port}", good, options=options) as channel:
            status = await pb_grpc.DecisioningServiceStub(channel).GetStatus(pb.GetStatusRequest(), timeout=5)
            assert status.ready
        # Without a client certificate: the handshake is refused.
        bare = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
        async with grpc.aio.secure_channel(f"127.0.0.1:{running.port}", bare, options=options) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await pb_grpc.DecisioningServiceStub(channel).GetStatus(pb.GetStatusRequest(), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await running.stop()


async def test_oversized_request_is_refused(tmp_path: Path) -> None:
    running = await start_server(_settings(tmp_path, max_message_bytes=64 * 1024))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.DecisioningServiceStub(channel)
            request = pb.GetAttributesRequest(mbox_names=["x" * 1024] * 100)  # ~100 KB
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetAttributes(request, timeout=5)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await running.stop()


async def test_gauges_follow_the_client(tmp_path: Path) -> None:
    from tests.conftest import CONFORMANCE
    from tests.support import eventually_async

    artifact = CONFORMANCE / "artifacts" / "TEST_ARTIFACT_AB_SIMPLE.json"
    running = await start_server(
        _settings(
            tmp_path, decisioning_method="on-device", artifact_payload=f"@{artifact}", polling_interval=0
        )
    )
    try:

        async def ready() -> bool:
            return running.client.ready

        await eventually_async(ready)
        assert metrics.REGISTRY.get_sample_value("targetd_ready") == 1
        age = metrics.REGISTRY.get_sample_value("targetd_artifact_age_seconds")
        assert age is not None and age >= 0
        assert metrics.REGISTRY.get_sample_value("targetd_event_subscribers") == 0
    finally:
        await running.stop()
    assert metrics.REGISTRY.get_sample_value("targetd_ready") == 0
