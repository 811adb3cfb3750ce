"""Server-side GetOffers / GetAttributes / SendNotifications: targetd and the local edge as real processes,
real gRPC and real HTTP on loopback."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from targetd_client.json_format import message_to_dict
from targetd_server.calls.cookies import parse_target_cookie
from tests.delivery.grpcutil import Client, request, rpc_error, trailing
from tests.delivery.support import ORG, EdgeProcess, targetd

EXECUTE = {
    "requestId": "caller-request-1",
    "context": {"channel": "web", "address": {"url": "https://www.acme.example/"}},
    "execute": {"mboxes": [{"name": "home", "index": 1}, {"name": "product1", "index": 2}]},
    "prefetch": {"mboxes": [{"name": "hero-banner", "index": 1}]},
}


@pytest.fixture
def server_side(clean_edge: EdgeProcess, data_dir: Path):  # type: ignore[no-untyped-def]
    with (
        targetd(clean_edge, data_dir, "server-side", "--environment-id", "42") as proc,
        Client(proc) as client,
    ):
        yield client


def test_get_offers_goes_to_the_delivery_api_as_the_sdk_sends_it(
    server_side: Client, clean_edge: EdgeProcess
) -> None:
    envelope = server_side.offers(EXECUTE, session_id="session-1")
    assert envelope.meta.decisioning_method == delivery_pb2.DECISIONING_METHOD_SERVER_SIDE
    response = message_to_dict(envelope.response)
    assert response["status"] == 200
    assert response["requestId"] == "caller-request-1"
    assert [m["name"] for m in response["execute"]["mboxes"]] == ["home", "product1"]
    assert response["prefetch"]["mboxes"][0]["options"][0]["eventToken"]
    token = envelope.response_tokens[0].fields["activity.decisioningMethod"].string_value
    assert token == "server-side"

    [sent] = clean_edge.decision_requests()
    assert sent["query"] == {"imsOrgId": ORG, "sessionId": "session-1"}
    headers = sent["headers"]
    assert headers["x-exc-sdk"] == "targetd"
    assert headers["x-exc-sdk-version"]
    assert headers["x-request-id"]
    assert headers["content-type"] == "application/json"
    body = sent["body"]
    assert body["requestId"] == "caller-request-1"  # Node keeps the caller's requestId
    assert body["environmentId"] == 42
    assert body["experienceCloud"]["analytics"]["logging"] == "server_side"
    assert body["context"]["channel"] == "web"
    assert "timeOffsetInMinutes" in body["context"]
    # The envelope carries the request as sent and the cookies.
    assert message_to_dict(envelope.request)["environmentId"] == 42
    cookie = parse_target_cookie(envelope.target_cookie.value)
    assert cookie.session_id == "session-1"
    assert cookie.device_id == response["id"]["tntId"]
    assert envelope.target_cookie.max_age in {63244800, 63244801}


def test_cookies_round_trip_session_device_and_cluster(server_side: Client, clean_edge: EdgeProcess) -> None:
    first = server_side.offers(EXECUTE)
    cookie = first.target_cookie.value
    parsed = parse_target_cookie(cookie)
    assert parsed.session_id and parsed.device_id
    second = server_side.offers(EXECUTE, target_cookie=cookie, session_id="ignored-when-cookie-has-one")
    sent = clean_edge.decision_requests()
    assert sent[1]["query"]["sessionId"] == parsed.session_id  # cookie session > session_id option
    assert sent[1]["body"]["id"]["tntId"] == parsed.device_id  # VisitorId from the PC cookie
    assert parse_target_cookie(second.target_cookie.value).session_id == parsed.session_id
    assert not first.HasField("target_location_hint_cookie")

    # A device id carrying an edge cluster (".35_0") selects that edge's host; the hint cookie follows.
    clustered = "session#s-35#9999999999|PC#abcdef0123.35_0#9999999999"
    third = server_side.offers(EXECUTE, target_cookie=clustered)
    last = clean_edge.decision_requests()[-1]
    assert last["host"] == f"localhost:{clean_edge.port}"  # edge_host_template, not server_domain
    assert last["query"]["sessionId"] == "s-35"
    assert last["body"]["id"]["tntId"] == "abcdef0123.35_0"
    assert third.target_location_hint_cookie.name == "mboxEdgeCluster"
    assert third.target_location_hint_cookie.value == "35"
    assert third.target_location_hint_cookie.max_age == 1860


def test_customer_ids_and_location_hint_option(server_side: Client, clean_edge: EdgeProcess) -> None:
    customer = delivery_pb2.CustomerId(
        id="c-1", integration_code="crm", authenticated_state=delivery_pb2.AUTHENTICATED_STATE_AUTHENTICATED
    )
    envelope = server_side.offers(EXECUTE, customer_ids=[customer], target_location_hint="28")
    sent = clean_edge.decision_requests()[-1]
    assert sent["body"]["id"]["customerIds"] == [
        {"id": "c-1", "integrationCode": "crm", "authenticatedState": "authenticated"}
    ]
    assert sent["host"] == f"localhost:{clean_edge.port}"  # the hint is a cluster
    assert envelope.target_location_hint_cookie.value == "28"


def test_get_attributes_server_side(server_side: Client) -> None:
    reply = server_side.stub.GetAttributes(
        pb.GetAttributesRequest(mbox_names=["product1"], request=request({"context": {"channel": "web"}})),
        timeout=10,
    )
    assert reply.envelope.meta.decisioning_method == delivery_pb2.DECISIONING_METHOD_SERVER_SIDE
    attributes = reply.attributes["product1"].fields
    assert attributes["discount"].number_value == 10
    assert attributes["showReviews"].bool_value is True


def test_send_notifications_drops_invalid_ones(server_side: Client, clean_edge: EdgeProcess) -> None:
    notifications = [
        {
            "id": "n-1",
            "type": "display",
            "timestamp": 1621530726000,
            "mbox": {"name": "home"},
            "tokens": ["t1"],
        },
        {"type": "display", "timestamp": 1621530726000, "mbox": {"name": "home"}},  # no id
        {"id": "n-3", "type": "click", "mbox": {"name": "home"}},  # no timestamp
        {"id": "n-4", "timestamp": 1621530726000, "mbox": {"name": "home"}},  # no type
        {"id": "n-5", "type": "click", "timestamp": 1621530726001, "view": {"name": "checkout"}},
    ]
    reply = server_side.stub.SendNotifications(
        pb.SendNotificationsRequest(
            request=request({"context": {"channel": "web"}, "notifications": notifications}), session_id="s-n"
        ),
        timeout=10,
    )
    assert reply.envelope.meta.decisioning_method == delivery_pb2.DECISIONING_METHOD_SERVER_SIDE
    assert [n.id for n in reply.envelope.request.notifications] == ["n-1", "n-5"]
    received = clean_edge.wait_notifications(2)
    assert [r["notification"]["id"] for r in received] == ["n-1", "n-5"]
    assert {r["sessionId"] for r in received} == {"s-n"}


def test_send_notifications_fails_when_none_is_valid(server_side: Client) -> None:
    bad = request(
        {"context": {"channel": "web"}, "notifications": [{"type": "display", "mbox": {"name": "x"}}]}
    )
    error = rpc_error(
        lambda: server_side.stub.SendNotifications(pb.SendNotificationsRequest(request=bad), timeout=10)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request.notifications" in (error.details() or "")
    error = rpc_error(lambda: server_side.stub.SendNotifications(pb.SendNotificationsRequest(), timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_upstream_5xx_is_unavailable_with_the_status(server_side: Client, clean_edge: EdgeProcess) -> None:
    clean_edge.fault(status=503, count=1)
    error = rpc_error(lambda: server_side.offers(EXECUTE))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "503" in (error.details() or "")
    assert "injected failure" in (error.details() or "")  # the body summary
    assert trailing(error)["targetd-upstream-status"] == "503"
    server_side.offers(EXECUTE)  # the fault was used up: the next call works


def test_upstream_4xx_is_a_rejection(server_side: Client, clean_edge: EdgeProcess) -> None:
    clean_edge.fault(status=400, count=1)
    error = rpc_error(lambda: server_side.offers(EXECUTE))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert trailing(error)["targetd-upstream-status"] == "400"
    clean_edge.fault(status=429, count=1)  # throttling is retryable: UNAVAILABLE
    assert rpc_error(lambda: server_side.offers(EXECUTE)).code() == grpc.StatusCode.UNAVAILABLE


def test_upstream_timeout_is_deadline_exceeded(clean_edge: EdgeProcess, data_dir: Path) -> None:
    clean_edge.fault(status=0, delay_ms=3000, count=1)  # slower than the 500 ms timeout option
    with targetd(clean_edge, data_dir, "server-side", "--timeout", "500") as proc, Client(proc) as client:
        error = rpc_error(lambda: client.offers(EXECUTE))
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "timed out" in (error.details() or "")


def test_callers_deadline_bounds_the_upstream_call(server_side: Client, clean_edge: EdgeProcess) -> None:
    clean_edge.fault(status=0, delay_ms=3000, count=1)  # the timeout option (2000 ms) is longer than this
    error = rpc_error(lambda: server_side.offers(EXECUTE, timeout=0.4))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_unreachable_delivery_api_is_unavailable(tmp_path: Path, clean_edge: EdgeProcess) -> None:
    import socket

    with socket.socket() as closed:  # a loopback port with nothing listening
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    args = ["--server-domain", f"127.0.0.1:{port}"]
    with targetd(clean_edge, tmp_path, "server-side", *args) as proc, Client(proc) as client:
        error = rpc_error(lambda: client.offers(EXECUTE))
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "failed" in (error.details() or "")


def test_server_side_telemetry_rides_with_the_next_call(server_side: Client, clean_edge: EdgeProcess) -> None:
    server_side.offers({**EXECUTE, "requestId": "first"})
    server_side.offers({**EXECUTE, "requestId": "second"})
    # (filtered: a delayed call of an earlier test may land late on the shared edge)
    sent = {r["body"]["requestId"]: r for r in clean_edge.decision_requests()}
    first, second = sent["first"], sent["second"]
    assert "telemetry" not in first["body"]
    [entry] = second["body"]["telemetry"]["entries"]  # Node's TelemetryProvider: drained into the next call
    assert entry["requestId"] == "first"
    assert entry["mode"] == "edge"
    assert entry["features"]["decisioningMethod"] == "server-side"
    assert entry["features"]["executeMboxCount"] == 2


def test_stored_telemetry_survives_a_failed_call(server_side: Client, clean_edge: EdgeProcess) -> None:
    server_side.offers({**EXECUTE, "requestId": "one"})
    clean_edge.fault(status=503, count=1)
    assert rpc_error(lambda: server_side.offers({**EXECUTE, "requestId": "two"})).code() == (
        grpc.StatusCode.UNAVAILABLE
    )
    server_side.offers({**EXECUTE, "requestId": "three"})
    sent = {r["body"]["requestId"]: r for r in clean_edge.decision_requests()}
    assert [e["requestId"] for e in sent["three"]["body"]["telemetry"]["entries"]] == ["one"]
