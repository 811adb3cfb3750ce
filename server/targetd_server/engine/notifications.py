"""Display notifications of executed decisions and the notification request that carries them."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from targetd.v1 import delivery_pb2

__all__ = ["NotificationCollector", "build_notification_request"]


class NotificationCollector:
    """Node ``NotificationProvider.addNotification``: one display notification per executed consequence
    with the event tokens not yet notified for that mbox; one timestamp per request."""

    __slots__ = ("_id_generator", "_seen", "notifications", "timestamp_ms")

    def __init__(self, timestamp_ms: int, id_generator: Callable[[], str]) -> None:
        self.timestamp_ms = timestamp_ms
        self._id_generator = id_generator
        self._seen: set[str] = set()
        self.notifications: list[delivery_pb2.Notification] = []

    def add(self, mbox_name: str, tokens: Iterable[str]) -> delivery_pb2.Notification | None:
        """Record a display of ``tokens`` for ``mbox_name``; the notification, or None if nothing new."""
        fresh: list[str] = []
        for token in tokens:
            key = f"{mbox_name}-{token}"
            if key not in self._seen:
                self._seen.add(key)
                fresh.append(token)
        if not fresh:
            return None
        notification = delivery_pb2.Notification(
            id=self._id_generator(),
            impression_id=self._id_generator(),
            timestamp=self.timestamp_ms,
            type=delivery_pb2.METRIC_TYPE_DISPLAY,
            tokens=fresh,
        )
        notification.mbox.name = mbox_name
        self.notifications.append(notification)
        return notification


def build_notification_request(
    request: delivery_pb2.DeliveryRequest,
    notifications: Iterable[delivery_pb2.Notification],
    telemetry_entries: Iterable[delivery_pb2.TelemetryEntry] = (),
) -> delivery_pb2.DeliveryRequest | None:
    """The request the SDK sends after an on-device decision: ``{id, context, experienceCloud,
    notifications?, telemetry?}`` from the *validated* request (so a generated tntId and a looked-up geo
    are included), or ``None`` when there is nothing to send."""
    notes = list(notifications)
    entries = list(telemetry_entries)
    if not notes and not entries:
        return None
    result = delivery_pb2.DeliveryRequest()
    if request.HasField("id"):
        result.id.CopyFrom(request.id)
    result.context.CopyFrom(request.context)
    result.context.geo.SetInParent()  # Node's engine request always has context.geo ({} without geo)
    if request.HasField("experience_cloud"):
        result.experience_cloud.CopyFrom(request.experience_cloud)
    if notes:
        result.notifications.extend(notes)
    if entries:
        result.telemetry.entries.extend(entries)
    return result
