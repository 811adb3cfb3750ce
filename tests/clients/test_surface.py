"""The Python client's public surface: frozen exports, SDK names and enums against the descriptors, every RPC
a method (both directions), keyword construction as in the SDK docs."""

from __future__ import annotations

import inspect

import targetd_client
from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from targetd_client import (
    RPC_METHODS,
    AsyncTargetClient,
    DeliveryRequest,
    MboxRequest,
    MetricType,
    Notification,
    NotificationMbox,
    PrefetchRequest,
    TargetClient,
)
from targetd_client._events import EVENT_NAMES_BY_TYPE
from targetd_client._options import EVENT_NAMES

FROZEN_EXPORTS = {
    "EVENT_NAMES", "RPC_METHODS", "ABTOrder", "Address", "AnalyticsPayload", "AnalyticsRequest",
    "AnalyticsResponse", "Application", "ArtifactDownloadError", "AsyncTargetClient", "AttributeNotFoundError",
    "Attributes", "AudienceManager", "AuthenticatedState", "Browser", "CallFuture", "ChannelType", "ClientHints", "Context",
    "Cookie", "CustomerId", "DeadlineExceededError", "DecisioningMethod", "DeliveryModel", "DeliveryRequest", "DeliveryResponse",
    "DeviceType", "ExecuteRequest", "ExecuteResponse", "ExecutionMode", "ExperienceCloud",
    "FailedPreconditionError", "Geo", "InvalidArgumentError", "InvalidOptionsError", "LoggingType",
    "MboxRequest", "MboxResponse", "Metric", "MetricType", "MobilePlatform", "MobilePlatformType",
    "Notification", "NotificationMbox", "NotificationPageLoad", "NotificationResponse", "NotificationView",
    "Option", "OptionType", "Order", "PageLoadResponse", "PermissionDeniedError", "PrefetchMboxResponse",
    "PrefetchRequest", "PrefetchResponse", "Preview", "Product", "Property", "QAMode", "QAModePreviewIndex",
    "RequestDetails", "ResourceExhaustedError", "ResponseMeta", "Screen", "ScreenOrientationType",
    "StatusCode", "TargetClient", "TargetClientError", "TargetDeliveryResponse", "TargetEvent",
    "TargetdRpcError", "Telemetry", "TelemetryEntry", "TelemetryFeatures", "TelemetryRequest", "Trace",
    "UnauthenticatedError", "UnavailableError", "UnexpectedError", "UnimplementedError", "View",
    "ViewRequest", "VisitorId", "Window", "message_to_dict", "parse_dict",
}  # fmt: skip

# Methods of the clients that are not RPCs.
LIFECYCLE = {"create", "close"}


def test_public_exports_are_frozen() -> None:
    assert set(targetd_client.__all__) == FROZEN_EXPORTS
    assert len(targetd_client.__all__) == len(set(targetd_client.__all__))
    for name in targetd_client.__all__:
        assert hasattr(targetd_client, name), name


def test_every_delivery_message_is_exported_under_its_schema_name() -> None:
    for name in delivery_pb2.DESCRIPTOR.message_types_by_name:
        assert getattr(targetd_client, name) is getattr(delivery_pb2, name), name


def test_enums_match_the_descriptors() -> None:
    for enum_name, descriptor in delivery_pb2.DESCRIPTOR.enum_types_by_name.items():
        ours = getattr(targetd_client, enum_name)
        prefix = descriptor.values[0].name.removesuffix("UNSPECIFIED")
        expected = {v.name.removeprefix(prefix): v.number for v in descriptor.values if v.number}
        if enum_name == "DecisioningMethod":  # the SDK's option strings
            assert {m.value for m in ours} == {"on-device", "server-side", "hybrid"}
            continue
        constants = {k: v for k, v in vars(ours).items() if k.isupper()}
        assert constants == expected, enum_name


def test_every_rpc_has_a_method_in_both_clients_and_back() -> None:
    service = pb.DESCRIPTOR.services_by_name["DecisioningService"]
    assert set(RPC_METHODS) == {m.name for m in service.methods}
    for client in (TargetClient, AsyncTargetClient):
        public = {
            name
            for name, member in inspect.getmembers(client)
            if not name.startswith("_") and callable(member)
        }
        assert public - LIFECYCLE == set(RPC_METHODS.values()), client
    for method in service.methods:
        coroutine = getattr(AsyncTargetClient, RPC_METHODS[method.name])
        if method.server_streaming:
            assert inspect.isasyncgenfunction(coroutine)
        else:
            assert inspect.iscoroutinefunction(coroutine)


def test_every_event_type_has_an_event_name() -> None:
    numbers = {v.number for v in pb.EventType.DESCRIPTOR.values if v.number}
    assert set(EVENT_NAMES_BY_TYPE) == numbers
    assert set(EVENT_NAMES) == set(EVENT_NAMES_BY_TYPE.values())


def test_keyword_construction_as_in_the_sdk_docs() -> None:
    mboxes = [MboxRequest(name="home"), MboxRequest(name="product1")]
    request = DeliveryRequest(prefetch=PrefetchRequest(mboxes=mboxes))
    assert [m.name for m in request.prefetch.mboxes] == ["home", "product1"]
    notification = Notification(
        id="1",
        type=MetricType.DISPLAY,
        timestamp=1621530726000,
        mbox=NotificationMbox(name="product1", state="s"),
        tokens=["t"],
    )
    assert notification.type == delivery_pb2.METRIC_TYPE_DISPLAY
    assert targetd_client.message_to_dict(notification) == {
        "id": "1",
        "type": "display",
        "timestamp": 1621530726000,
        "tokens": ["t"],
        "mbox": {"name": "product1", "state": "s"},
    }
