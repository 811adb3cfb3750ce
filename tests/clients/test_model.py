"""DeliveryModel: SDK-model-like reading of Delivery API messages."""

from __future__ import annotations

import pytest

from targetd.v1 import delivery_pb2
from targetd_client import DeliveryModel, OptionType, parse_dict

RESPONSE = {
    "status": 200,
    "requestId": "r1",
    "prefetch": {
        "mboxes": [
            {
                "index": 1,
                "name": "product1",
                "state": "st",
                "options": [
                    {"type": "json", "content": {"a": 1, "b": [1.5, "x", None]}, "eventToken": "tok"},
                    {"type": "html", "content": "<p>hi</p>"},
                ],
                "metrics": [{"type": "click", "eventToken": "c"}],
            }
        ]
    },
}


def model() -> DeliveryModel:
    return DeliveryModel(parse_dict(RESPONSE, delivery_pb2.DeliveryResponse()))


def test_attributes_read_like_the_sdk_models() -> None:
    response = model()
    mbox = response.prefetch.mboxes[0]
    assert (mbox.name, mbox.index, mbox.state) == ("product1", 1, "st")
    assert mbox.options[0].event_token == mbox.options[0].eventToken == "tok"
    assert mbox.options[0].content == {"a": 1, "b": [1.5, "x", None]}
    assert mbox.options[1].content == "<p>hi</p>"
    assert mbox.options[0].type == OptionType.JSON
    assert response.execute is None and response.edge_host is None and mbox.trace is None
    assert response.notifications is None
    with pytest.raises(AttributeError):
        _ = response.nope


def test_item_access_and_to_dict_are_delivery_json() -> None:
    response = model()
    assert response["prefetch"]["mboxes"][0]["options"][0]["eventToken"] == "tok"
    assert response.get("execute") is None and "prefetch" in response and "execute" not in response
    with pytest.raises(KeyError):
        _ = response["execute"]
    assert response.to_dict() == RESPONSE | {
        "prefetch": {"mboxes": [RESPONSE["prefetch"]["mboxes"][0]]}  # type: ignore[index]
    }
    assert set(response) == {"status", "requestId", "prefetch"}
    assert response == model()
    assert isinstance(response.message, delivery_pb2.DeliveryResponse)


def test_read_only() -> None:
    with pytest.raises(AttributeError, match="read-only"):
        model().status = 1
