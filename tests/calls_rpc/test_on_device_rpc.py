"""GetOffers / GetAttributes on-device over real gRPC, against a real in-process server on port 0."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc
from targetd.v1 import delivery_pb2
from targetd_client.json_format import message_to_dict, parse_dict
from targetd_server.config import Settings
from targetd_server.service.server import RunningServer, start_server
from tests.conftest import CONFORMANCE
from tests.support import eventually_async

AB_SIMPLE = CONFORMANCE / "artifacts" / "TEST_ARTIFACT_AB_SIMPLE.json"
FEATURE_FLAG = CONFORMANCE / "artifacts" / "TEST_ARTIFACT_FEATURE_FLAG.json"


def _request(data: dict[str, Any]) -> delivery_pb2.DeliveryRequest:
    return parse_dict(data, delivery_pb2.DeliveryRequest())


async def _serve(tmp_path: Path, artifact: Path, **extra: Any) -> RunningServer:
    settings = Settings(
        client="someClientId",
        organization_id="someOrgId@AdobeOrg",
        decisioning_method="on-device",
        artifact_payload="@" + str(artifact),
        polling_interval=0,
        telemetry_enabled=False,
        listen="127.0.0.1:0",
        data_dir=str(tmp_path),
        grace_period=1.0,
        **extra,
    )
    running = await start_server(settings)
    await eventually_async(lambda: _ready(running))
    return running


async def _ready(running: RunningServer) -> bool:
    return running.client.ready


@pytest.fixture
async def ab_stub(tmp_path: Path) -> AsyncIterator[pb_grpc.DecisioningServiceAsyncStub]:
    running = await _serve(tmp_path, AB_SIMPLE)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield pb_grpc.DecisioningServiceStub(channel)
    await running.stop()


BASE = {
    "id": {"tntId": "338e3c1e51f7416a8e1ccba4f81acea0.28_0"},
    "context": {
        "channel": "web",
        "address": {"url": "http://local-target-test/"},
        "userAgent": "Mozilla/5.0",
    },
}


async def test_execute_returns_the_envelope(ab_stub: pb_grpc.DecisioningServiceAsyncStub) -> None:
    request = _request(
        {**BASE, "requestId": "req-1", "execute": {"mboxes": [{"name": "mbox-magician", "index": 1}]}}
    )
    reply = await ab_stub.GetOffers(pb.GetOffersRequest(request=request, session_id="s-1"), timeout=5)
    envelope = reply.envelope
    response = message_to_dict(envelope.response)
    assert response["status"] == 200
    assert response["requestId"] == "req-1"  # the caller's requestId is kept (Node)
    assert response["client"] == "someClientId"
    mbox = response["execute"]["mboxes"][0]
    assert mbox["name"] == "mbox-magician" and mbox["index"] == 1
    assert mbox["options"][0]["type"] == "json"
    assert "eventToken" not in mbox["options"][0]  # execute drops event tokens
    assert envelope.meta.decisioning_method == delivery_pb2.DECISIONING_METHOD_ON_DEVICE
    # The mbox cookie carries the session and the visitor. The cluster comes only from a PC cookie or a
    # location hint (not from the request's own tntId), as in the SDKs: here there is none.
    assert envelope.target_cookie.name == "mbox"
    assert envelope.target_cookie.value.startswith("session#s-1#")
    assert "|PC#338e3c1e51f7416a8e1ccba4f81acea0.28_0#" in envelope.target_cookie.value
    # Node: ceil(|expires_ms - now_ms| / 1000) with expires in whole seconds rounded up: 63244800 s (two
    # years less a month) plus the part of a second that rounding added.
    assert envelope.target_cookie.max_age in (63244800, 63244801)
    assert not envelope.HasField("target_location_hint_cookie")
    assert [dict(tokens) for tokens in envelope.response_tokens]  # one per option
    assert envelope.response_tokens[0]["activity.decisioningMethod"] == "on-device"


async def test_cookie_session_wins_over_option(ab_stub: pb_grpc.DecisioningServiceAsyncStub) -> None:
    import time

    expires = int(time.time()) + 600
    cookie = f"session#from-cookie#{expires}|PC#abc.35_0#{expires + 1000}"
    request = _request({**BASE, "prefetch": {"mboxes": [{"name": "mbox-magician", "index": 1}]}})
    request.id.ClearField("tnt_id")
    reply = await ab_stub.GetOffers(
        pb.GetOffersRequest(request=request, target_cookie=cookie, session_id="from-option"), timeout=5
    )
    assert reply.envelope.target_cookie.value.startswith("session#from-cookie#")
    assert reply.envelope.request.id.tnt_id == "abc.35_0"  # tntId defaults to the PC cookie
    assert reply.envelope.target_location_hint_cookie.name == "mboxEdgeCluster"
    assert reply.envelope.target_location_hint_cookie.value == "35"
    assert reply.envelope.target_location_hint_cookie.max_age == 1860
    option = reply.envelope.response.prefetch.mboxes[0].options[0]
    assert option.event_token  # prefetch keeps event tokens


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"context": {"channel": "web"}, "execute": {}},
            "request.execute",
            "Either pageLoad or mboxes is required in execute",
        ),
        (
            {"context": {"channel": "web"}, "prefetch": {}},
            "request.prefetch",
            "Either views, pageLoad or mboxes is required in prefetch",
        ),
    ],
)
async def test_invalid_requests_name_the_field(
    ab_stub: pb_grpc.DecisioningServiceAsyncStub, data: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await ab_stub.GetOffers(pb.GetOffersRequest(request=_request(data)), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == f"{field}: {message}"


async def test_missing_request_is_invalid(ab_stub: pb_grpc.DecisioningServiceAsyncStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await ab_stub.GetOffers(pb.GetOffersRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "request: Request object is required"


async def test_get_attributes_flattens_json_offers(tmp_path: Path) -> None:
    artifact = json.loads(FEATURE_FLAG.read_text())
    mbox = next(iter(artifact["rules"]["mboxes"]))
    running = await _serve(tmp_path, FEATURE_FLAG)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.DecisioningServiceStub(channel)
            call = pb.GetAttributesRequest(mbox_names=[mbox], request=_request(BASE))
            reply = await stub.GetAttributes(call, timeout=5)
        assert mbox in reply.attributes
        attributes = dict(reply.attributes[mbox])
        # Whatever experience the visitor got, its JSON offer's keys are the attributes.
        options = reply.envelope.response.execute.mboxes[0].options
        expected = {}
        for option in options:
            if option.type == delivery_pb2.OPTION_TYPE_JSON:
                expected.update(message_to_dict(delivery_pb2.Option(content=option.content))["content"])
        assert expected and attributes.keys() == expected.keys()
    finally:
        await running.stop()


async def test_not_ready_is_unavailable(tmp_path: Path) -> None:
    settings = Settings(
        client="c",
        organization_id="o",
        decisioning_method="on-device",
        artifact_location="http://127.0.0.1:9/rules.json",
        listen="127.0.0.1:0",
        data_dir=str(tmp_path),
        grace_period=1.0,
    )
    running = await start_server(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.DecisioningServiceStub(channel)
            request = _request({**BASE, "execute": {"mboxes": [{"name": "x", "index": 1}]}})
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetOffers(pb.GetOffersRequest(request=request), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "decisioning engine not ready" in (info.value.details() or "")
    finally:
        await running.stop()


async def test_unsupported_payload_version_answers_with_the_sdk_message(tmp_path: Path) -> None:
    unsupported = (CONFORMANCE / "artifacts" / "TEST_ARTIFACT_UNSUPPORTED.json").read_text(encoding="utf-8")
    settings = Settings(
        client="c",
        organization_id="o",
        decisioning_method="on-device",
        artifact_payload=unsupported,
        listen="127.0.0.1:0",
        data_dir=str(tmp_path),
        grace_period=1.0,
    )
    running = await start_server(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.DecisioningServiceStub(channel)
            request = _request({**BASE, "execute": {"mboxes": [{"name": "x", "index": 1}]}})
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetOffers(pb.GetOffersRequest(request=request), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert info.value.details() == (  # Node's getOffers rejects with exactly this message
            "The decisioning artifact version (99.0.0) is not supported. "
            "This library is compatible with this major version: 1"
        )
    finally:
        await running.stop()


async def test_call_level_customer_ids_apply_on_device(ab_stub: pb_grpc.DecisioningServiceAsyncStub) -> None:
    """Call-level customer ids reach the completed request on-device as they do server-side (Node)."""
    customer = delivery_pb2.CustomerId(
        id="c-1", integration_code="crm", authenticated_state=delivery_pb2.AUTHENTICATED_STATE_AUTHENTICATED
    )
    reply = await ab_stub.GetOffers(
        pb.GetOffersRequest(
            request=_request({**BASE, "execute": {"mboxes": [{"name": "mbox-magician", "index": 1}]}}),
            customer_ids=[customer],
            consumer_id="second-consumer",
        ),
        timeout=5,
    )
    sent = reply.envelope.request
    assert [(c.id, c.integration_code) for c in sent.id.customer_ids] == [("c-1", "crm")]
    assert sent.experience_cloud.analytics.logging == delivery_pb2.LOGGING_TYPE_SERVER_SIDE
    assert sent.experience_cloud.analytics.supplemental_data_id  # the call's SDID (Analytics for Target)
