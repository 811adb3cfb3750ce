"""The protobuf model is lossless against Delivery API JSON.

Every ``input.request``, ``output`` and ``notificationOutput`` of the shared conformance suites and every
example of the OpenAPI spec is parsed into the ``targetd.v1`` messages with unknown fields rejected, printed
back, and compared for equality with the original.

Normalisations, each narrow and stated:
* Jest matchers (``"expect.any(Object)"`` …) are placeholders, not data: they are removed field by field.
* JSON ``null`` means "absent" in the Delivery API (``"mobilePlatform": null`` in five requests).
* An empty array means "none" (``"metrics": []`` of six prefetched views): proto3 has no presence for
  repeated fields, so an empty list and an absent one are the same message. ``message_to_dict`` can print
  every empty list as ``[]`` (``including_empty_repeated``), which the conformance runner uses.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message

from targetd.v1 import delivery_pb2
from targetd_client.json_format import JsonMappingError, message_to_dict, parse_dict
from tests.conftest import CONFORMANCE, OPENAPI

_MATCHER = re.compile(r"^expect\.any\((Object|String|Number)\)$")
# Four shared vectors carry the SDK harness's session id inside the request; it is no Delivery API field
# (the SDKs read it from the get_offers options, where targetd has GetOffersRequest.session_id).
_HARNESS_ONLY_REQUEST_KEYS = {"sessionId"}


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _normalise(item)
            for key, item in value.items()
            if item is not None and item != [] and not (isinstance(item, str) and _MATCHER.match(item))
        }
    if isinstance(value, list):
        # A matcher standing for a whole array element keeps its place as an empty object.
        return [{} if item == "expect.any(Object)" else _normalise(item) for item in value]
    return value


def _round_trip(document: dict[str, Any], message: Message) -> None:
    expected = _normalise(document)
    parsed = parse_dict(expected, message)
    printed = message_to_dict(parsed)
    assert printed == expected
    # And through the binary wire format, as a gRPC peer would see it.
    again = type(message).FromString(parsed.SerializeToString())
    assert message_to_dict(again) == expected


def _suite_cases() -> list[Any]:
    cases = []
    for path in sorted((CONFORMANCE / "suites").glob("*.json")):
        suite = json.loads(path.read_text())
        for key, test in suite["test"].items():
            cases.append(pytest.param(test, id=f"{path.stem}/{key}"))
    return cases


@pytest.mark.parametrize("test", _suite_cases())
def test_suite_vectors_round_trip(test: dict[str, Any]) -> None:
    request = dict(test["input"]["request"])
    stray = _HARNESS_ONLY_REQUEST_KEYS & request.keys()
    if stray:
        # Unknown fields are rejected: prove it, then compare the rest.
        with pytest.raises(JsonMappingError, match="unknown field 'sessionId'"):
            parse_dict(request, delivery_pb2.DeliveryRequest())
        for key in stray:
            del request[key]
    _round_trip(request, delivery_pb2.DeliveryRequest())
    if test.get("output") is not None:
        _round_trip(test["output"], delivery_pb2.DeliveryResponse())
    if test.get("notificationOutput") is not None:
        _round_trip(test["notificationOutput"]["request"], delivery_pb2.DeliveryRequest())


_EXAMPLE_TYPES = {
    "notificationsForDisplayedContent.json": delivery_pb2.DeliveryRequest,
    "responseForPrefetchViewsForMobileChannel.json": delivery_pb2.DeliveryResponse,
    "responseForPrefetchViewsForWebChannel.json": delivery_pb2.DeliveryResponse,
}


def _load_lenient(path: Path) -> Any:
    # The published examples have trailing commas, which JSON does not allow; drop them and nothing else.
    return json.loads(re.sub(r",(\s*[}\]])", r"\1", path.read_text()))


def test_every_example_is_known() -> None:
    names = {p.name for p in (OPENAPI / "delivery" / "examples").glob("*.json")}
    assert names == set(_EXAMPLE_TYPES)


@pytest.mark.parametrize("name", sorted(_EXAMPLE_TYPES))
def test_openapi_examples_round_trip(name: str) -> None:
    document = _load_lenient(OPENAPI / "delivery" / "examples" / name)
    _round_trip(document, _EXAMPLE_TYPES[name]())


@pytest.mark.parametrize(
    ("sent", "seen"),
    [
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (10, "10"),
        (-3, "-3"),
        (1.5, "1.5"),
        (2.0, "2"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (1e16, "10000000000000000"),
        (1e21, "1e+21"),
        (123456789012345678.0, "123456789012345680"),
    ],
)
def test_parameter_numbers_and_booleans_become_javascript_strings(sent: Any, seen: str) -> None:
    """Node callers send numbers and booleans in parameters/profileParameters; JavaScript's String()."""
    request = parse_dict(
        {"execute": {"mboxes": [{"name": "m", "parameters": {"p": sent}, "profileParameters": {"q": sent}}]}},
        delivery_pb2.DeliveryRequest(),
    )
    mbox = request.execute.mboxes[0]
    assert (mbox.parameters["p"], mbox.profile_parameters["q"]) == (seen, seen)


def test_other_string_fields_still_refuse_numbers() -> None:
    with pytest.raises(JsonMappingError, match="expected a string, got a number"):
        parse_dict({"execute": {"mboxes": [{"name": 5}]}}, delivery_pb2.DeliveryRequest())


def test_printing_covers_maps_repeated_scalars_nested_structs_and_empty_lists() -> None:
    """The printer's per-type plans: a map of scalars, a map of Structs, repeated strings, nested messages,
    and ``including_empty_repeated`` for the repeated fields that are absent."""
    from google.protobuf import struct_pb2

    from targetd.v1 import decisioning_service_pb2

    attributes = decisioning_service_pb2.GetAttributesResponse()
    struct = attributes.attributes["m"]
    struct.update({"n": 2.0, "f": 1.5, "s": "x", "b": True, "l": [1.0, "y"], "o": {"k": None}})
    assert message_to_dict(attributes) == {
        "attributes": {"m": {"n": 2, "f": 1.5, "s": "x", "b": True, "l": [1, "y"], "o": {"k": None}}}
    }
    assert isinstance(struct, struct_pb2.Struct)
    status = decisioning_service_pb2.OutboxStatus()
    status.dropped["full"] = 3
    assert message_to_dict(status)["dropped"] == {"full": 3}
    order = delivery_pb2.DeliveryRequest()
    order.execute.mboxes.add(name="m").order.purchased_product_ids.extend(["a", "b"])
    printed = message_to_dict(order)
    assert printed == {"execute": {"mboxes": [{"name": "m", "order": {"purchasedProductIds": ["a", "b"]}}]}}
    assert isinstance(printed["execute"]["mboxes"][0]["order"]["purchasedProductIds"], list)
    full = message_to_dict(order, including_empty_repeated=True)
    assert full["notifications"] == []  # absent repeated field of the top message
    mbox = full["execute"]["mboxes"][0]
    assert mbox["order"]["purchasedProductIds"] == ["a", "b"]
    assert "parameters" not in mbox  # maps are never printed empty
    assert "prefetch" not in full  # absent messages stay absent


def test_printing_refuses_enum_values_without_a_spelling_and_bytes() -> None:
    """An enum number outside the spec (proto3 keeps unknown numbers) and a bytes field have no Delivery
    API JSON: JsonMappingError naming the field, never a wrong value."""
    from targetd.v1 import decisioning_service_pb2

    request = delivery_pb2.DeliveryRequest()
    request.context.channel = 99  # type: ignore[assignment]
    with pytest.raises(JsonMappingError, match=r"targetd\.v1\.Context\.channel: enum value 99 has no JSON"):
        message_to_dict(request)
    subscribe = decisioning_service_pb2.Event(artifact_payload=b"{}")
    with pytest.raises(JsonMappingError, match="artifact_payload: bytes fields have no Delivery API JSON"):
        message_to_dict(subscribe)
