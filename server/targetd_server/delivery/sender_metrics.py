"""The ``targetd_outbox_*`` metrics of the notification sender, recorded in the serving process (the
service's one registry, :data:`targetd_server.metrics.REGISTRY`) by :mod:`.supervisor` from the sender
process's status lines — so one ``/metrics`` shows the whole pipeline. Gauges declare a live multiprocess
mode (``--workers N``: each worker supervises its own sender).

Thread affinity: any (prometheus-client collectors are thread-safe).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final

from prometheus_client import Counter, Gauge

from targetd_server.metrics import REGISTRY

__all__ = [
    "OUTBOX_DELIVERED",
    "OUTBOX_IN_FLIGHT",
    "OUTBOX_NOTIFICATIONS_DELIVERED",
    "OUTBOX_SENDER_RESTARTS",
    "OUTBOX_SENDER_UP",
    "outbox_send_failures",
    "outbox_sender_quarantined",
]

OUTBOX_DELIVERED: Final = Counter(
    "targetd_outbox_delivered", "Outbox rows the Delivery API accepted.", registry=REGISTRY
)
OUTBOX_NOTIFICATIONS_DELIVERED: Final = Counter(
    "targetd_outbox_notifications_delivered",
    "Notifications in the outbox rows the Delivery API accepted.",
    registry=REGISTRY,
)
OUTBOX_SEND_FAILURES: Final = Counter(
    "targetd_outbox_send_failures",
    "Failed Delivery API requests of the sender, by class (retryable, rejected, expired, closing, bug).",
    ["kind"],
    registry=REGISTRY,
)
OUTBOX_SENDER_QUARANTINED: Final = Counter(
    "targetd_outbox_sender_quarantined",
    "Rows the sender moved to quarantine, by reason (undecodable, unmappable, rejected, expired).",
    ["reason"],
    registry=REGISTRY,
)
OUTBOX_SENDER_RESTARTS: Final = Counter(
    "targetd_outbox_sender_restarts", "Times the sender process died and was restarted.", registry=REGISTRY
)
OUTBOX_SENDER_UP: Final = Gauge(
    "targetd_outbox_sender_up",
    "1 while the sender process runs and its store works.",
    registry=REGISTRY,
    multiprocess_mode="livemin",
)
OUTBOX_IN_FLIGHT: Final = Gauge(
    "targetd_outbox_in_flight",
    "Delivery API requests of the sender in flight (as last reported).",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)


@lru_cache(maxsize=16)
def outbox_send_failures(kind: str) -> Any:
    """The cached child counter of failed sends of class ``kind``."""
    return OUTBOX_SEND_FAILURES.labels(kind)


@lru_cache(maxsize=16)
def outbox_sender_quarantined(reason: str) -> Any:
    """The cached child counter of rows quarantined by the sender for ``reason``."""
    return OUTBOX_SENDER_QUARANTINED.labels(reason)
