"""Option validation (the SDK's messages), per-call options → request messages, callback arity."""

from __future__ import annotations

from typing import Any

import pytest

from targetd.v1 import delivery_pb2
from targetd_client import (
    CustomerId,
    DeliveryRequest,
    ExecuteRequest,
    InvalidOptionsError,
    MboxRequest,
    TargetClient,
    TargetClientError,
)
from targetd_client._options import (
    get_attributes_call,
    get_offers_call,
    send_notifications_call,
    takes_no_argument,
    validate_client_options,
)

BASE = {"client": "acmeclient", "organization_id": "1234567890@AdobeOrg"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (None, "Options are required"),
        ({}, "Options are required"),
        ({"organization_id": "o"}, "Client is required"),
        ({"client": "c"}, "Organization Id is required"),
        (
            {**BASE, "decisioning_method": "local"},
            "Invalid Decisioning Method.  Must be set to one of: hybrid,on-device,server-side",
        ),
        ({**BASE, "events": {"clientReady": print}}, "Unknown event name 'clientReady'"),
        ({**BASE, "events": {"client_ready": 3}}, "Callback must be a callable function"),
        ({**BASE, "timeout": -1}, "timeout must be a number of milliseconds >= 0"),
        ({**BASE, "tls_client_certificate": b"-----BEGIN"}, "go together"),
    ],
)
def test_create_validation_messages(options: Any, message: str) -> None:
    with pytest.raises(InvalidOptionsError) as raised:
        TargetClient.create(options)
    assert message in str(raised.value)


def test_constructor_refuses_direct_use() -> None:
    with pytest.raises(TargetClientError, match=r"Please use TargetClient\.create static method instead"):
        TargetClient(BASE)


def test_settings_defaults_and_server_options_accepted() -> None:
    settings = validate_client_options(
        {**BASE, "polling_interval": 0, "artifact_payload": {}, "targetd_address": "127.0.0.1:1"}
    )
    assert settings.address == "127.0.0.1:1"
    assert settings.timeout_s == 3.0
    assert settings.decisioning_method == delivery_pb2.DECISIONING_METHOD_UNSPECIFIED
    assert not settings.tls


def test_get_offers_options_map_onto_the_request() -> None:
    settings = validate_client_options(
        {**BASE, "decisioning_method": "hybrid", "target_location_hint": "28", "property_token": "tok"}
    )
    request = DeliveryRequest(execute=ExecuteRequest(mboxes=[MboxRequest(name="m", index=1)]))
    message, call = get_offers_call(
        {
            "request": request,
            "target_cookie": "cookie",
            "session_id": "s1",
            "consumer_id": "c1",
            "customer_ids": [
                CustomerId(id="42", integration_code="crm"),
                {"id": "7", "integrationCode": "x"},
            ],
            "timeout": 500,
        },
        settings,
    )
    assert message.decisioning_method == delivery_pb2.DECISIONING_METHOD_HYBRID
    assert message.target_location_hint == "28"
    assert (message.target_cookie, message.session_id, message.consumer_id) == ("cookie", "s1", "c1")
    assert [c.id for c in message.customer_ids] == ["42", "7"]
    assert message.request.property.token == "tok"
    assert not request.HasField("property"), "the caller's request is not mutated"
    assert call.timeout_s == 0.5 and not call.is_async


def test_per_call_method_overrides_and_json_requests_are_accepted() -> None:
    settings = validate_client_options(BASE)
    message, _ = get_offers_call(
        {"request": {"execute": {"mboxes": [{"name": "m", "index": 1}]}}, "decisioning_method": "on-device"},
        settings,
    )
    assert message.decisioning_method == delivery_pb2.DECISIONING_METHOD_ON_DEVICE
    assert message.request.execute.mboxes[0].name == "m"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (None, "Options are required"),
        ({"request": None}, "Request object of type DeliveryRequest is required"),
        ({"request": "x"}, "Request object of type DeliveryRequest is required"),
        ({"request": DeliveryRequest(), "callback": 1}, "Callback must be a callable function"),
        ({"request": DeliveryRequest(), "visitor": object()}, "visitor option is not supported"),
        ({"request": {"execute": {"nope": 1}}}, "unknown field 'nope'"),
    ],
)
def test_get_offers_validation(options: Any, message: str) -> None:
    with pytest.raises(InvalidOptionsError, match=message):
        get_offers_call(options, validate_client_options(BASE))


def test_send_notifications_requires_notifications() -> None:
    with pytest.raises(InvalidOptionsError, match="Notifications list is required in request"):
        send_notifications_call({"request": DeliveryRequest()}, validate_client_options(BASE))


def test_get_attributes_without_options_and_name_checks() -> None:
    settings = validate_client_options(BASE)
    message, _ = get_attributes_call(["a", "b"], None, settings)
    assert list(message.mbox_names) == ["a", "b"] and not message.HasField("request")
    with pytest.raises(InvalidOptionsError, match="list of mbox names"):
        get_attributes_call("a", None, settings)


def test_callback_arity() -> None:
    def none() -> None: ...
    def one(event: Any) -> None: ...
    def star(*args: Any) -> None: ...
    def keyword_only(*, event: Any = None) -> None: ...

    assert takes_no_argument(none)
    assert takes_no_argument(keyword_only)
    assert not takes_no_argument(one)
    assert not takes_no_argument(star)
    assert not takes_no_argument(print)
    assert takes_no_argument(lambda: None)
    assert not takes_no_argument(lambda e: None)
