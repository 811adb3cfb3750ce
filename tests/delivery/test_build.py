"""Pure parts of the remote side: host selection, the request as the SDK sends it, notification checks."""

from __future__ import annotations

from typing import Any

from targetd.v1 import delivery_pb2
from targetd_client.json_format import message_to_dict, parse_dict
from targetd_server.config import Settings
from targetd_server.delivery import build_delivery_request, target_host, valid_notification
from targetd_server.delivery.http import DeliveryApi


def _settings(**extra: Any) -> Settings:
    return Settings(client="acme", organization_id="org@AdobeOrg", **extra)


def test_host_selection() -> None:
    assert target_host(_settings(), None) == "acme.tt.omtrdc.net"
    assert target_host(_settings(server_domain="edge.example.com"), None) == "edge.example.com"
    assert target_host(_settings(server_domain="edge.example.com"), "35") == "mboxedge35.tt.omtrdc.net"
    assert target_host(_settings(edge_host_template="proxy-{cluster}.internal"), "7") == "proxy-7.internal"
    # (no call made: nothing to close)
    assert DeliveryApi(_settings(secure=False)).url(None) == "http://acme.tt.omtrdc.net/rest/v1/delivery"
    assert DeliveryApi(_settings()).url("28") == "https://mboxedge28.tt.omtrdc.net/rest/v1/delivery"


def _built(data: dict[str, Any], **options: Any) -> dict[str, Any]:
    request = parse_dict(data, delivery_pb2.DeliveryRequest())
    build_delivery_request(request, **{"environment_id": None, "property_token": None, **options})
    result: dict[str, Any] = message_to_dict(request)
    return result


def test_request_defaults_as_the_sdk() -> None:
    body = _built({"execute": {"mboxes": [{"name": "a"}, {"name": ""}, {"name": "b", "index": 7}]}})
    assert body["requestId"]  # generated when absent
    assert body["context"]["channel"] == "web"
    assert "timeOffsetInMinutes" in body["context"]
    assert body["experienceCloud"]["analytics"]["logging"] == "server_side"
    assert body["execute"]["mboxes"] == [{"index": 0, "name": "a"}, {"index": 7, "name": "b"}]
    assert "property" not in body and "environmentId" not in body


def test_request_keeps_what_the_caller_set() -> None:
    body = _built(
        {
            "requestId": "mine",
            "environmentId": 5,
            "property": {"token": "caller-token"},
            "context": {"channel": "mobile", "timeOffsetInMinutes": 120},
            "experienceCloud": {"analytics": {"logging": "client_side"}},
            "prefetch": {"views": [{"name": "v"}]},
        },
        environment_id=9,
        property_token="config-token",
    )
    assert body["requestId"] == "mine"
    assert body["environmentId"] == 5
    assert body["property"] == {"token": "caller-token"}
    assert body["context"]["channel"] == "mobile"
    assert body["context"]["timeOffsetInMinutes"] == 120
    assert body["experienceCloud"]["analytics"]["logging"] == "client_side"


def test_request_configuration_defaults_and_empty_parts() -> None:
    body = _built(
        {"execute": {"mboxes": [{"name": ""}]}, "prefetch": {}},
        environment_id=9,
        property_token="config-token",
        customer_ids=[delivery_pb2.CustomerId(id="1", integration_code="crm")],
    )
    assert body["environmentId"] == 9
    assert body["property"] == {"token": "config-token"}
    assert "execute" not in body and "prefetch" not in body  # nothing left in them
    assert body["id"]["customerIds"] == [{"id": "1", "integrationCode": "crm"}]


def test_notification_validation() -> None:
    def note(**fields: Any) -> delivery_pb2.Notification:
        return parse_dict(fields, delivery_pb2.Notification())

    assert valid_notification(note(id="1", type="display", timestamp=1))
    assert valid_notification(note(id="1", type="click", timestamp=0))
    assert not valid_notification(note(type="display", timestamp=1))
    assert not valid_notification(note(id="1", timestamp=1))
    assert not valid_notification(note(id="1", type="display"))
    body = _built(
        {"notifications": [{"id": "ok", "type": "display", "timestamp": 1}, {"id": "bad", "type": "display"}]}
    )
    assert [n["id"] for n in body["notifications"]] == ["ok"]
