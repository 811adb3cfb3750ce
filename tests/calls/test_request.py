"""The one request completion (both paths), as Node's createDeliveryRequest, and notification checks."""

from __future__ import annotations

from typing import Any

from targetd.json_format import message_to_dict, parse_dict
from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from targetd_server.calls import CallOptions
from targetd_server.calls.request import complete_request, valid_notification
from targetd_server.config import Settings


def _built(
    data: dict[str, Any], *, customer_ids: tuple[delivery_pb2.CustomerId, ...] = (), **settings: Any
) -> dict[str, Any]:
    request = parse_dict(data, delivery_pb2.DeliveryRequest())
    options = CallOptions.of(pb.GetOffersRequest(customer_ids=customer_ids))
    config = Settings(client="acme", organization_id="org@AdobeOrg", **settings)
    complete_request(request, options, options.identity(None), config, supplemental_data_ids=lambda: "SDID")
    result: dict[str, Any] = message_to_dict(request)
    return result


def test_request_defaults_as_the_sdk() -> None:
    body = _built({"execute": {"mboxes": [{"name": "a"}, {"name": ""}, {"name": "b", "index": 7}]}})
    assert body["requestId"]  # generated when absent
    assert body["context"]["channel"] == "web"
    assert "timeOffsetInMinutes" in body["context"]
    assert body["experienceCloud"]["analytics"] == {"logging": "server_side", "supplementalDataId": "SDID"}
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
        customer_ids=(delivery_pb2.CustomerId(id="1", integration_code="crm"),),
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


def test_call_customer_ids_come_first_as_in_node() -> None:
    body = _built(
        {
            "id": {"customerIds": [{"id": "r", "integrationCode": "req"}]},
            "execute": {"mboxes": [{"name": "a"}]},
        },
        customer_ids=(
            delivery_pb2.CustomerId(id="old", integration_code="crm"),
            delivery_pb2.CustomerId(
                id="1",
                integration_code="crm",
                authenticated_state=delivery_pb2.AUTHENTICATED_STATE_AUTHENTICATED,
            ),
        ),
    )
    assert body["id"]["customerIds"] == [
        {"id": "1", "integrationCode": "crm", "authenticatedState": "authenticated"},
        {"id": "r", "integrationCode": "req"},
    ]


def test_tnt_id_from_the_pc_cookie() -> None:
    request = parse_dict({"execute": {"mboxes": [{"name": "a"}]}}, delivery_pb2.DeliveryRequest())
    options = CallOptions.of(pb.GetOffersRequest(target_cookie="PC#dev.35_0#99999999999"))
    complete_request(request, options, options.identity(None), Settings(client="acme", organization_id="o"))
    assert request.id.tnt_id == "dev.35_0"
    assert request.experience_cloud.analytics.supplemental_data_id  # a fresh SDID per call
