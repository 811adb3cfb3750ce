"""The remote side: the Delivery API client (server-side and hybrid decisions, SendNotifications), the
IP geo lookup, the location hint, and the durable outbox for on-device notifications and telemetry.

Entry point for the Target client: :class:`ServerSide` (``server_side``). Parts: ``http`` (pooled HTTP
client, host selection, errors), ``build`` (the Delivery request as the SDKs send it, notification
validation), ``geo`` (cached IP lookups), ``outbox`` (SQLite, background sender), ``outbox_files`` (one
file per live process, adoption of the files of gone ones).
"""

from targetd_server.delivery.build import build_delivery_request, valid_notification, validate_notifications
from targetd_server.delivery.http import DeliveryApi, target_host
from targetd_server.delivery.outbox import Outbox, OutboxStats
from targetd_server.delivery.server_side import ServerSide

__all__ = [
    "DeliveryApi",
    "Outbox",
    "OutboxStats",
    "ServerSide",
    "build_delivery_request",
    "target_host",
    "valid_notification",
    "validate_notifications",
]
