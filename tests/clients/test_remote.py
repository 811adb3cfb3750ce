"""The client's calls that go to Target (the local edge stand-in): per-call server-side and hybrid, and
upstream failures surfacing as the client's errors with the upstream status."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from targetd_client import (
    Context,
    DeliveryRequest,
    ExecuteRequest,
    FailedPreconditionError,
    Geo,
    MboxRequest,
    MetricType,
    Notification,
    NotificationMbox,
    StatusCode,
    TargetClient,
    UnavailableError,
)
from tests.delivery.support import EdgeProcess
from tests.support import TargetdProcess, eventually


@pytest.fixture
def client(server: TargetdProcess, edge: EdgeProcess) -> Iterator[TargetClient]:
    edge.clear_fault()
    options: dict[str, Any] = {
        "client": "acmeclient",
        "organization_id": "1234567890@AdobeOrg",
        "targetd_address": server.address,
    }
    with TargetClient.create(options) as target_client:
        eventually(lambda: target_client.get_status()["ready"])
        yield target_client
    edge.clear_fault()


def home() -> DeliveryRequest:
    return DeliveryRequest(execute=ExecuteRequest(mboxes=[MboxRequest(name="home", index=1)]))


def test_per_call_decisioning_method(client: TargetClient) -> None:
    remote = client.get_offers({"request": home(), "decisioning_method": "server-side"})
    assert remote["meta"]["decisioning_method"] == "server-side"
    assert remote["response"].execute.mboxes[0].name == "home"
    local = client.get_offers({"request": home(), "decisioning_method": "hybrid"})
    assert local["meta"]["decisioning_method"] == "on-device"  # home is local: hybrid decides on-device
    default = client.get_offers({"request": home()})
    assert default["meta"]["decisioning_method"] == "on-device"  # the server's configured method


def test_upstream_failures_carry_the_upstream_status(client: TargetClient, edge: EdgeProcess) -> None:
    edge.fault(status=503)
    with pytest.raises(UnavailableError) as unavailable:
        client.get_offers({"request": home(), "decisioning_method": "server-side"})
    assert unavailable.value.code is StatusCode.UNAVAILABLE
    assert unavailable.value.upstream_status == unavailable.value.status == 503
    edge.fault(status=400)
    notification = Notification(
        id="n1", type=MetricType.DISPLAY, timestamp=1621530726000, mbox=NotificationMbox(name="home")
    )
    with pytest.raises(FailedPreconditionError) as refused:
        client.send_notifications({"request": DeliveryRequest(notifications=[notification])})
    assert refused.value.upstream_status == 400


def test_artifact_payload_and_geo_events(server: TargetdProcess) -> None:
    seen: list[Any] = []
    names = ("artifact_download_succeeded", "geo_location_updated")
    options: dict[str, Any] = {
        "client": "acmeclient",
        "organization_id": "1234567890@AdobeOrg",
        "targetd_address": server.address,
        "include_artifact_payload": True,
        "events": dict.fromkeys(names, seen.append),
    }
    with TargetClient.create(options) as client:
        downloaded = eventually(lambda: [e for e in seen if e.type == "artifact_download_succeeded"] or None)
        assert downloaded is not None
        assert downloaded[0].artifact_payload["meta"]["clientCode"] == "acmeclient"
        assert downloaded[0].artifact["source"] == "remote"
        request = DeliveryRequest(
            context=Context(geo=Geo(ip_address="203.0.113.10")),
            execute=ExecuteRequest(mboxes=[MboxRequest(name="geo-banner", index=1)]),
        )
        client.get_offers({"request": request})
        geo = eventually(lambda: [e for e in seen if e.type == "geo_location_updated"] or None)
        assert geo is not None
        assert geo[0].geo_context["city"] == geo[0]["geo_context"]["city"] == "SAN FRANCISCO"
        assert geo[0].geo_context["ipAddress"] == "203.0.113.10"
