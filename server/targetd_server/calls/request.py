"""The Delivery request as the SDKs complete it before deciding (Node's ``createDeliveryRequest``), for
both paths: the on-device engine and the Delivery API get the same completed request. Also the SDKs'
request validation and notification checks. Pure functions over protobuf messages; no I/O.

Validation happens once per call, here (:func:`validate_request`), with the SDKs' messages; the errors are
:class:`~targetd_server.errors.InvalidRequestError`, which the service maps to INVALID_ARGUMENT.

Thread affinity: none.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from targetd.v1 import delivery_pb2
from targetd_server.calls.options import CallOptions, RequestIdentity
from targetd_server.config import Settings
from targetd_server.engine import validate_delivery_request
from targetd_server.errors import InvalidRequestError
from targetd_server.ids import new_id, new_supplemental_data_id
from targetd_server.logs import Throttled

log = logging.getLogger("targetd.calls")
invalid_input_log = Throttled(log)
"""Lines about invalid input: at most one per kind a minute, truncated, without the caller's values."""

# The SDKs' messages (Node's messages.js), verbatim.
MBOX_INVALID = "Mbox validation failed for: "
NOTIFICATION_INVALID = "Notification validation failed for: "

__all__ = ["complete_request", "valid_notification", "validate_notifications", "validate_request"]

_NOTIFICATION_TYPES = frozenset({delivery_pb2.METRIC_TYPE_CLICK, delivery_pb2.METRIC_TYPE_DISPLAY})


def _local_offset_minutes() -> float:
    return time.localtime().tm_gmtoff / 60


def validate_request(request: delivery_pb2.DeliveryRequest | None) -> delivery_pb2.DeliveryRequest:
    """The checks of the SDKs' ``validateGetOffersOptions``, and a name for every mbox (the SDKs drop an
    unnamed mbox with ``Mbox validation failed for:``; targetd refuses the request instead, so that a
    caller never gets an answer for an mbox it cannot tell apart); returns the request. Raises
    :class:`InvalidRequestError` naming the field. The limits are :func:`~targetd_server.calls.limits.
    check_call`'s, checked before."""
    if request is None:
        raise InvalidRequestError("Request object is required", field="request")
    validate_delivery_request(request)
    for part in ("execute", "prefetch"):
        if request.HasField(part):
            for position, mbox in enumerate(getattr(request, part).mboxes):
                if not mbox.name:
                    raise InvalidRequestError(
                        f"{MBOX_INVALID}request.{part}.mboxes[{position}] (a name is required)",
                        field=f"request.{part}.mboxes[{position}].name",
                    )
    return request


def valid_notification(notification: delivery_pb2.Notification) -> bool:
    """The SDKs' check: an ``id``, a ``timestamp`` and a type of ``click`` or ``display``."""
    return (
        bool(notification.id)
        and notification.HasField("timestamp")
        and notification.type in _NOTIFICATION_TYPES
    )


def validate_notifications(request: delivery_pb2.DeliveryRequest) -> int:
    """Drop (and log) the invalid notifications of ``request`` in place; returns how many were dropped."""
    notifications = request.notifications
    keep = [n for n in notifications if valid_notification(n)]
    dropped = len(notifications) - len(keep)
    if dropped:
        for position, bad in enumerate(notifications):
            if not valid_notification(bad):
                # Rate-limited, and never the payload (parameters, profile values, tokens).
                invalid_input_log.warning(
                    "invalid_notification",
                    f"{NOTIFICATION_INVALID}request.notifications[{position}] (id {bad.id[:64]!r}: an id, a "
                    f"timestamp and a click/display type are required); {dropped} dropped",
                )
                break
        del notifications[:]
        notifications.extend(keep)
    return dropped


def _clean_mboxes(container: delivery_pb2.ExecuteRequest | delivery_pb2.PrefetchRequest) -> None:
    """Node: mboxes without a name are dropped (logged), a missing index becomes the mbox's position."""
    if any(not mbox.name for mbox in container.mboxes):
        named = []
        for mbox in container.mboxes:
            if mbox.name:
                copy = delivery_pb2.MboxRequest()
                copy.CopyFrom(mbox)
                named.append(copy)
            else:
                invalid_input_log.warning("invalid_mbox", f"{MBOX_INVALID}an mbox without a name; dropped")
        del container.mboxes[:]
        container.mboxes.extend(named)
    for position, mbox in enumerate(container.mboxes):
        if not mbox.HasField("index"):
            mbox.index = position


def _merge_customer_ids(
    visitor: delivery_pb2.VisitorId, customer_ids: tuple[delivery_pb2.CustomerId, ...]
) -> None:
    """Node: the call's customer ids (one per integration code, the last one wins) come first, then the
    request's own ``id.customerIds``."""
    if not customer_ids:
        return
    by_code: dict[str, delivery_pb2.CustomerId] = {}
    for customer in customer_ids:
        by_code[customer.integration_code] = customer
    existing = list(visitor.customer_ids)
    del visitor.customer_ids[:]
    for customer in by_code.values():
        visitor.customer_ids.add().CopyFrom(customer)
    visitor.customer_ids.extend(existing)


def complete_request(
    request: delivery_pb2.DeliveryRequest,
    options: CallOptions,
    identity: RequestIdentity,
    settings: Settings,
    *,
    ids: Callable[[], str] = new_id,
    supplemental_data_ids: Callable[[], str] = new_supplemental_data_id,
) -> delivery_pb2.DeliveryRequest:
    """Complete ``request`` in place (the caller owns it) as the SDKs do before either path; returns it.

    * ``requestId`` kept when the caller set one (Node), else a new id; ``environmentId`` and
      ``property.token`` defaulted from the configuration (``property`` dropped when it has no token);
    * ``id.tntId`` defaults to the device id of the ``PC`` cookie; the call's ``customer_ids`` are merged
      into ``id.customerIds``;
    * ``context.channel`` defaults to ``web``, ``context.timeOffsetInMinutes`` to the server's offset;
    * ``experienceCloud.analytics``: ``logging`` defaults to ``server_side``, ``supplementalDataId`` to a
      fresh SDID (see :mod:`targetd_server.calls.options` on ``consumer_id``);
    * empty ``execute``/``prefetch`` dropped, unnamed mboxes dropped (logged), a missing mbox index set to
      the position; invalid notifications dropped (logged).
    """
    if not request.request_id:
        request.request_id = ids()
    if settings.environment_id is not None and not request.HasField("environment_id"):
        request.environment_id = settings.environment_id
    if not request.property.token:
        if settings.property_token:
            request.property.token = settings.property_token
        else:
            request.ClearField("property")
    if identity.device_id and not request.id.tnt_id:
        request.id.tnt_id = identity.device_id
    _merge_customer_ids(request.id, options.customer_ids)
    context = request.context
    if context.channel == delivery_pb2.CHANNEL_TYPE_UNSPECIFIED:
        context.channel = delivery_pb2.CHANNEL_TYPE_WEB
    if not context.HasField("time_offset_in_minutes"):
        context.time_offset_in_minutes = _local_offset_minutes()
    analytics = request.experience_cloud.analytics
    if analytics.logging == delivery_pb2.LOGGING_TYPE_UNSPECIFIED:
        analytics.logging = delivery_pb2.LOGGING_TYPE_SERVER_SIDE
    if not analytics.supplemental_data_id:
        analytics.supplemental_data_id = supplemental_data_ids()
    if request.HasField("execute"):
        _clean_mboxes(request.execute)
        if not request.execute.mboxes and not request.execute.HasField("page_load"):
            request.ClearField("execute")
    if request.HasField("prefetch"):
        _clean_mboxes(request.prefetch)
        prefetch = request.prefetch
        if not prefetch.mboxes and not prefetch.views and not prefetch.HasField("page_load"):
            request.ClearField("prefetch")
    if request.notifications:
        validate_notifications(request)
    return request
