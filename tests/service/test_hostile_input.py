"""Hostile input over real gRPC (issue 12): every request limit, undecodable bytes, out-of-range enums,
integer overflow, unnamed mboxes, the response-size check — against a real in-process server on port 0."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc
from targetd.v1 import delivery_pb2
from targetd_server.calls.request import invalid_input_log, validate_notifications
from targetd_server.config import Settings
from targetd_server.logs import Throttled
from targetd_server.service.server import RunningServer, start_server
from tests.conftest import CONFORMANCE
from tests.support import eventually_async

AB_SIMPLE = CONFORMANCE / "artifacts" / "TEST_ARTIFACT_AB_SIMPLE.json"
SERVICE = "/targetd.v1.DecisioningService/"


async def _serve(tmp_path: Path, artifact: Path, **extra: Any) -> RunningServer:
    settings = Settings(
        client="someClientId",
        organization_id="someOrgId@AdobeOrg",
        decisioning_method="on-device",
        artifact_payload="@" + str(artifact),
        polling_interval=0,
        telemetry_enabled=False,
        listen="127.0.0.1:0",
        data_dir=str(tmp_path / "data"),
        grace_period=1.0,
        **extra,
    )
    running = await start_server(settings)

    async def ready() -> bool:
        return running.client.ready

    await eventually_async(ready)
    return running


@pytest.fixture
async def channel(tmp_path: Path) -> AsyncIterator[grpc.aio.Channel]:
    running = await _serve(tmp_path, AB_SIMPLE, max_mboxes_per_request=3, max_views_per_request=2)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as chan:
        yield chan
    await running.stop()


def _mboxes(count: int) -> delivery_pb2.DeliveryRequest:
    request = delivery_pb2.DeliveryRequest()
    for index in range(count):
        request.execute.mboxes.add(name=f"mbox-{index}", index=index)
    return request


async def _refused(call: Any, request: Any, code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(request, timeout=5)
    assert caught.value.code() == code, caught.value.details()
    return caught.value.details() or ""


@pytest.mark.parametrize(
    "method", ["GetOffers", "GetAttributes", "SendNotifications", "GetStatus", "SubscribeEvents"]
)
async def test_undecodable_bytes_are_invalid_argument(
    channel: grpc.aio.Channel, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = b"\x0a\xff\xff\xff\xff\x0f"  # field 1, length-delimited, a length far past the end
    if method == "SubscribeEvents":
        call: Any = channel.unary_stream(SERVICE + method)
        stream = call(garbage, timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stream:
                pass
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = caught.value.details() or ""
    else:
        details = await _refused(channel.unary_unary(SERVICE + method), garbage)
    assert "not a valid targetd.v1." in details
    assert not [r for r in caplog.records if r.exc_info], "no traceback for bad input"


async def test_enum_values_out_of_range_name_the_field(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.DecisioningServiceStub(channel)
    request = _mboxes(1)
    request.context.channel = 999  # type: ignore[assignment]
    details = await _refused(stub.GetOffers, pb.GetOffersRequest(request=request))
    assert details.startswith("request.context.channel: 999 is not a valid ChannelType")

    unknown_method = pb.GetOffersRequest(request=_mboxes(1), decisioning_method=7)  # type: ignore[arg-type]
    details = await _refused(stub.GetOffers, unknown_method)
    assert details.startswith("decisioning_method: 7 is not a valid DecisioningMethod")

    customer = pb.GetOffersRequest(request=_mboxes(1))
    customer.customer_ids.add(id="c", integration_code="crm", authenticated_state=42)
    details = await _refused(stub.GetOffers, customer)
    assert details.startswith("customer_ids[0].authenticated_state: 42 is not a valid")

    screen = _mboxes(1)
    screen.context.screen.orientation = -3  # type: ignore[assignment]
    details = await _refused(stub.GetAttributes, pb.GetAttributesRequest(request=screen))
    assert "request.context.screen.orientation" in details


async def test_index_overflow_is_invalid_argument(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.DecisioningServiceStub(channel)
    request = delivery_pb2.DeliveryRequest()
    request.execute.mboxes.add(name="a", index=2147483647)
    details = await _refused(stub.GetAttributes, pb.GetAttributesRequest(request=request, mbox_names=["b"]))
    assert "2147483647" in details


async def test_an_mbox_without_a_name_is_invalid_argument(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.DecisioningServiceStub(channel)
    request = _mboxes(1)
    request.prefetch.mboxes.add(index=4)
    details = await _refused(stub.GetOffers, pb.GetOffersRequest(request=request))
    assert details == (
        "request.prefetch.mboxes[0].name: Mbox validation failed for: request.prefetch.mboxes[0] "
        "(a name is required)"
    )
    details = await _refused(stub.GetAttributes, pb.GetAttributesRequest(mbox_names=["a", ""]))
    assert details.startswith("mbox_names[1]: ")


async def test_mboxes_per_request_are_limited(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.DecisioningServiceStub(channel)
    await stub.GetOffers(pb.GetOffersRequest(request=_mboxes(3)), timeout=5)  # at the limit: served
    request = _mboxes(2)
    request.prefetch.mboxes.add(name="p1", index=1)
    request.prefetch.mboxes.add(name="p2", index=2)
    details = await _refused(stub.GetOffers, pb.GetOffersRequest(request=request))
    assert (
        details == "request.prefetch.mboxes: more than 3 mboxes in one request (limit max_mboxes_per_request)"
    )
    details = await _refused(
        stub.GetAttributes, pb.GetAttributesRequest(request=_mboxes(2), mbox_names=["x", "y"])
    )
    assert "max_mboxes_per_request" in details


async def test_views_per_request_are_limited(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.DecisioningServiceStub(channel)
    request = delivery_pb2.DeliveryRequest()
    for name in ("a", "b", "c"):
        request.prefetch.views.add(name=name)
    details = await _refused(stub.GetOffers, pb.GetOffersRequest(request=request))
    assert details == "request.prefetch.views: more than 2 views in one request (limit max_views_per_request)"


async def test_maps_and_lists_are_limited(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.DecisioningServiceStub(channel)
    request = _mboxes(1)
    for index in range(101):
        request.execute.mboxes[0].parameters[f"p{index}"] = "v"
    details = await _refused(stub.GetOffers, pb.GetOffersRequest(request=request))
    assert details == (
        "request.execute.mboxes[0].parameters: 101 entries, over the limit of 100 (limit max_items_per_field)"
    )
    notes = pb.SendNotificationsRequest()
    for index in range(101):
        notes.request.notifications.add(id=f"n{index}")
    details = await _refused(stub.SendNotifications, notes)
    assert "request.notifications: 101 entries" in details


async def test_strings_are_limited(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.DecisioningServiceStub(channel)
    request = _mboxes(1)
    request.context.address.url = "http://x/" + "a" * 8192
    details = await _refused(stub.GetOffers, pb.GetOffersRequest(request=request))
    assert (
        details
        == "request.context.address.url: 8201 characters, over the limit of 8192 (limit max_string_length)"
    )
    request = _mboxes(1)
    request.execute.mboxes[0].profile_parameters["k" * 9000] = "v"
    details = await _refused(stub.GetOffers, pb.GetOffersRequest(request=request))
    assert "request.execute.mboxes[0].profile_parameters: a key is over 8192 characters" in details


async def test_a_response_over_the_message_limit_is_resource_exhausted(tmp_path: Path) -> None:
    artifact = json.loads(AB_SIMPLE.read_text())
    rule = copy.deepcopy(artifact["rules"]["mboxes"]["mbox-magician"][0])
    rule["condition"] = True
    rule["consequence"]["options"][0] = {"type": "html", "eventToken": "t", "content": "x" * 70_000}
    artifact["rules"]["mboxes"]["big"] = [rule]
    path = tmp_path / "big.json"
    path.write_text(json.dumps(artifact))
    running = await _serve(tmp_path, path, max_message_bytes=65536)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as chan:
            stub = pb_grpc.DecisioningServiceStub(chan)
            request = delivery_pb2.DeliveryRequest()
            request.execute.mboxes.add(name="big", index=1)
            details = await _refused(
                stub.GetOffers, pb.GetOffersRequest(request=request), grpc.StatusCode.RESOURCE_EXHAUSTED
            )
            assert "over the limit of 65536 (max_message_bytes)" in details
            status = await stub.GetStatus(pb.GetStatusRequest(), timeout=5)  # still serving
            assert status.ready
    finally:
        await running.stop()


def test_invalid_notifications_are_logged_once_per_interval_without_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    invalid_input_log._last.clear()
    request = delivery_pb2.DeliveryRequest()
    bad = request.notifications.add(id="n-1")
    bad.parameters["secret"] = "value-that-must-not-be-logged"
    bad.profile_parameters["email"] = "someone@example.com"
    with caplog.at_level(logging.WARNING, logger="targetd.calls"):
        for _ in range(5):
            copy_ = delivery_pb2.DeliveryRequest()
            copy_.CopyFrom(request)
            assert validate_notifications(copy_) == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "targetd.calls"]
    assert len(lines) == 1
    assert lines[0].startswith("Notification validation failed for: request.notifications[0] (id 'n-1'")
    assert "value-that-must-not-be-logged" not in caplog.text
    assert "someone@example.com" not in caplog.text


def test_throttled_logs_once_per_kind_per_interval_and_truncates(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    throttled = Throttled(logging.getLogger("targetd.test"), interval=60, max_chars=20, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="targetd.test"):
        assert throttled.warning("a", "first " + "x" * 100)
        assert not throttled.warning("a", "second")
        assert throttled.warning("b", "other kind")
        now[0] += 61
        assert throttled.warning("a", "third")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "first " + "x" * 14 + "…",
        "other kind",
        "third (1 more like it in the last 60 s not logged)",
    ]


async def test_a_field_path_with_a_hostile_map_key_stays_a_valid_trailer(channel: grpc.aio.Channel) -> None:
    """Found by the fuzz test: the path names the map key, and the ``targetd-field`` trailer must stay
    printable ASCII whatever the key."""
    stub = pb_grpc.DecisioningServiceStub(channel)
    request = _mboxes(1)
    request.execute.mboxes[0].parameters["k\x1f\u00e9"] = "v" * 9000
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetOffers(pb.GetOffersRequest(request=request), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    trailers = dict(caught.value.trailing_metadata() or ())
    assert trailers["targetd-field"] == "request.execute.mboxes[0].parameters[k\\x1f\\xe9]"
