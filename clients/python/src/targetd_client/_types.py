"""The Delivery API message types under the names of Adobe's ``delivery_api_client``, and its enums.

The message classes are the generated ``targetd.v1`` protobuf classes themselves (protobuf classes cannot be
subclassed), so keyword construction works as in the SDK: ``MboxRequest(name="home", index=1)``. Enum fields
take the constants of the enum classes below, e.g. ``Notification(type=MetricType.DISPLAY)``: each constant is
the proto enum number (an ``int``, typed as the proto enum), named as the SDK names it.
"""

from __future__ import annotations

import enum
from typing import Final

from targetd.v1 import delivery_pb2 as _d

__all__ = [
    "ABTOrder",
    "Address",
    "AnalyticsPayload",
    "AnalyticsRequest",
    "AnalyticsResponse",
    "Application",
    "AudienceManager",
    "AuthenticatedState",
    "Browser",
    "ChannelType",
    "ClientHints",
    "Context",
    "CustomerId",
    "DecisioningMethod",
    "DeliveryRequest",
    "DeliveryResponse",
    "DeviceType",
    "ExecuteRequest",
    "ExecuteResponse",
    "ExecutionMode",
    "ExperienceCloud",
    "Geo",
    "LoggingType",
    "MboxRequest",
    "MboxResponse",
    "Metric",
    "MetricType",
    "MobilePlatform",
    "MobilePlatformType",
    "Notification",
    "NotificationMbox",
    "NotificationPageLoad",
    "NotificationResponse",
    "NotificationView",
    "Option",
    "OptionType",
    "Order",
    "PageLoadResponse",
    "PrefetchMboxResponse",
    "PrefetchRequest",
    "PrefetchResponse",
    "Preview",
    "Product",
    "Property",
    "QAMode",
    "QAModePreviewIndex",
    "RequestDetails",
    "Screen",
    "ScreenOrientationType",
    "Telemetry",
    "TelemetryEntry",
    "TelemetryFeatures",
    "TelemetryRequest",
    "Trace",
    "UnexpectedError",
    "View",
    "ViewRequest",
    "VisitorId",
    "Window",
]

# ------------------------------------------------------------------------------------------ messages

ABTOrder = _d.ABTOrder
Address = _d.Address
AnalyticsPayload = _d.AnalyticsPayload
AnalyticsRequest = _d.AnalyticsRequest
AnalyticsResponse = _d.AnalyticsResponse
Application = _d.Application
AudienceManager = _d.AudienceManager
Browser = _d.Browser
ClientHints = _d.ClientHints
Context = _d.Context
CustomerId = _d.CustomerId
DeliveryRequest = _d.DeliveryRequest
DeliveryResponse = _d.DeliveryResponse
ExecuteRequest = _d.ExecuteRequest
ExecuteResponse = _d.ExecuteResponse
ExperienceCloud = _d.ExperienceCloud
Geo = _d.Geo
MboxRequest = _d.MboxRequest
MboxResponse = _d.MboxResponse
Metric = _d.Metric
MobilePlatform = _d.MobilePlatform
Notification = _d.Notification
NotificationMbox = _d.NotificationMbox
NotificationPageLoad = _d.NotificationPageLoad
NotificationResponse = _d.NotificationResponse
NotificationView = _d.NotificationView
Option = _d.Option
Order = _d.Order
PageLoadResponse = _d.PageLoadResponse
PrefetchMboxResponse = _d.PrefetchMboxResponse
PrefetchRequest = _d.PrefetchRequest
PrefetchResponse = _d.PrefetchResponse
Preview = _d.Preview
Product = _d.Product
Property = _d.Property
QAMode = _d.QAMode
QAModePreviewIndex = _d.QAModePreviewIndex
RequestDetails = _d.RequestDetails
Screen = _d.Screen
Telemetry = _d.Telemetry
TelemetryEntry = _d.TelemetryEntry
TelemetryFeatures = _d.TelemetryFeatures
TelemetryRequest = _d.TelemetryRequest
Trace = _d.Trace
UnexpectedError = _d.UnexpectedError
View = _d.View
ViewRequest = _d.ViewRequest
VisitorId = _d.VisitorId
Window = _d.Window

# ------------------------------------------------------------------------------------------ enums
# Constants are the proto numbers of ``targetd.v1`` (a test checks them against the descriptors).


class ChannelType:
    """``context.channel``."""

    MOBILE: Final = _d.CHANNEL_TYPE_MOBILE
    WEB: Final = _d.CHANNEL_TYPE_WEB


class DeviceType:
    """``context.mobilePlatform.deviceType``."""

    PHONE: Final = _d.DEVICE_TYPE_PHONE
    TABLET: Final = _d.DEVICE_TYPE_TABLET


class MobilePlatformType:
    """``context.mobilePlatform.platformType``."""

    ANDROID: Final = _d.MOBILE_PLATFORM_TYPE_ANDROID
    IOS: Final = _d.MOBILE_PLATFORM_TYPE_IOS


class ScreenOrientationType:
    """``context.screen.orientation``."""

    PORTRAIT: Final = _d.SCREEN_ORIENTATION_TYPE_PORTRAIT
    LANDSCAPE: Final = _d.SCREEN_ORIENTATION_TYPE_LANDSCAPE


class AuthenticatedState:
    """``CustomerId.authenticatedState``."""

    UNKNOWN: Final = _d.AUTHENTICATED_STATE_UNKNOWN
    AUTHENTICATED: Final = _d.AUTHENTICATED_STATE_AUTHENTICATED
    LOGGED_OUT: Final = _d.AUTHENTICATED_STATE_LOGGED_OUT


class LoggingType:
    """``experienceCloud.analytics.logging``."""

    SERVER_SIDE: Final = _d.LOGGING_TYPE_SERVER_SIDE
    CLIENT_SIDE: Final = _d.LOGGING_TYPE_CLIENT_SIDE


class MetricType:
    """``Notification.type`` and ``Metric.type``."""

    CLICK: Final = _d.METRIC_TYPE_CLICK
    DISPLAY: Final = _d.METRIC_TYPE_DISPLAY


class OptionType:
    """``Option.type``."""

    HTML: Final = _d.OPTION_TYPE_HTML
    JSON: Final = _d.OPTION_TYPE_JSON
    REDIRECT: Final = _d.OPTION_TYPE_REDIRECT
    DYNAMIC: Final = _d.OPTION_TYPE_DYNAMIC
    ACTIONS: Final = _d.OPTION_TYPE_ACTIONS


class ExecutionMode:
    """``TelemetryEntry.mode``."""

    EDGE: Final = _d.EXECUTION_MODE_EDGE
    LOCAL: Final = _d.EXECUTION_MODE_LOCAL


class DecisioningMethod(enum.StrEnum):
    """The ``decisioning_method`` option values (strings, as in the SDK's options)."""

    ON_DEVICE = "on-device"
    SERVER_SIDE = "server-side"
    HYBRID = "hybrid"
