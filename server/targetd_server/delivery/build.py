"""The Delivery request as the SDKs send it (reference §6, Node behaviour), and notification validation
(§1.4). Pure functions over protobuf messages; no I/O.

Thread affinity: none.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from targetd.v1 import delivery_pb2
from targetd_server.engine.request import new_id

log = logging.getLogger("targetd.delivery")

__all__ = ["build_delivery_request", "valid_notification", "validate_notifications"]

_NOTIFICATION_TYPES = frozenset({delivery_pb2.METRIC_TYPE_CLICK, delivery_pb2.METRIC_TYPE_DISPLAY})


def _local_offset_minutes() -> float:
    return time.localtime().tm_gmtoff / 60


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
        for bad in notifications:
            if not valid_notification(bad):
                log.warning(
                    "Notification validation failed for: %s (id, timestamp and a click/display type are "
                    "required); dropped",
                    bad,
                )
        del notifications[:]
        notifications.extend(keep)
    return dropped


def _drop_unnamed(mboxes: Iterable[delivery_pb2.MboxRequest]) -> list[delivery_pb2.MboxRequest]:
    kept: list[delivery_pb2.MboxRequest] = []
    for mbox in mboxes:
        if mbox.name:
            kept.append(mbox)
        else:
            log.warning("Mbox validation failed for: %s (a name is required); dropped", mbox)
    return kept


def _clean_mboxes(container: delivery_pb2.ExecuteRequest | delivery_pb2.PrefetchRequest) -> None:
    named = _drop_unnamed(container.mboxes)
    if len(named) != len(container.mboxes):
        copies = [delivery_pb2.MboxRequest() for _ in named]
        for copy, original in zip(copies, named, strict=True):
            copy.CopyFrom(original)
        del container.mboxes[:]
        container.mboxes.extend(copies)
    for position, mbox in enumerate(container.mboxes):
        if not mbox.HasField("index"):
            mbox.index = position  # Node: index = position when it is not a number


def build_delivery_request(
    request: delivery_pb2.DeliveryRequest,
    *,
    environment_id: int | None,
    property_token: str | None,
    customer_ids: Iterable[delivery_pb2.CustomerId] = (),
) -> None:
    """Complete ``request`` in place into what the SDK POSTs (the caller owns it):

    * ``requestId`` kept when the caller set one (Node), else a new uuid;
    * ``environmentId`` and ``property.token`` defaulted from the configuration;
    * the call's ``customer_ids`` appended to ``id.customerIds`` (unless one with the same integration
      code is already there); ``id.tntId`` is defaulted from the ``PC`` cookie by the caller;
    * ``context.channel`` defaults to ``web``, ``context.timeOffsetInMinutes`` to the server's offset;
    * ``experienceCloud.analytics.logging`` defaults to ``server_side``;
    * empty ``execute``/``prefetch`` dropped, unnamed mboxes dropped (logged), missing indexes set to the
      position; invalid notifications dropped (logged).
    """
    if not request.request_id:
        request.request_id = new_id()
    if environment_id is not None and not request.HasField("environment_id"):
        request.environment_id = environment_id
    if not request.property.token:
        if property_token:
            request.property.token = property_token
        else:
            request.ClearField("property")
    known = {c.integration_code for c in request.id.customer_ids}
    for customer in customer_ids:
        if customer.integration_code not in known:
            request.id.customer_ids.add().CopyFrom(customer)
            known.add(customer.integration_code)
    context = request.context
    if context.channel == delivery_pb2.CHANNEL_TYPE_UNSPECIFIED:
        context.channel = delivery_pb2.CHANNEL_TYPE_WEB
    if not context.HasField("time_offset_in_minutes"):
        context.time_offset_in_minutes = _local_offset_minutes()
    analytics = request.experience_cloud.analytics
    if analytics.logging == delivery_pb2.LOGGING_TYPE_UNSPECIFIED:
        analytics.logging = delivery_pb2.LOGGING_TYPE_SERVER_SIDE
    if request.HasField("execute"):
        _clean_mboxes(request.execute)
        if not request.execute.mboxes and not request.execute.HasField("page_load"):
            request.ClearField("execute")
    if request.HasField("prefetch"):
        _clean_mboxes(request.prefetch)
        prefetch = request.prefetch
        if not prefetch.mboxes and not prefetch.views and not prefetch.HasField("page_load"):
            request.ClearField("prefetch")
    validate_notifications(request)
