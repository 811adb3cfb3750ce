"""Every ``targetd_outbox_*`` metric, in the service's one registry
(:data:`targetd_server.metrics.REGISTRY`): the serving side's store (stored, dropped by reason, backlog,
quarantine, oldest age, degraded — recorded by :mod:`.outbox`) and the sender's (delivered, failures,
quarantined, restarts, up, in flight, open circuits — recorded in the serving process by
:mod:`.supervisor` from the sender process's status lines, so one ``/metrics`` shows the whole
pipeline). Gauges declare a live multiprocess mode (``--workers N``: each worker has its own outbox file
and sender, so backlog, quarantine, in-flight and open circuits sum over the live workers; degraded and
oldest age take the largest, up the smallest).

Thread affinity: any (prometheus-client collectors are thread-safe).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final

from prometheus_client import Counter, Gauge

from targetd_server.metrics import REGISTRY

__all__ = [
    "OUTBOX_BACKLOG",
    "OUTBOX_CIRCUITS_OPEN",
    "OUTBOX_DEGRADED",
    "OUTBOX_DELIVERED",
    "OUTBOX_IN_FLIGHT",
    "OUTBOX_NOTIFICATIONS_DELIVERED",
    "OUTBOX_OLDEST_AGE",
    "OUTBOX_QUARANTINED",
    "OUTBOX_SENDER_RESTARTS",
    "OUTBOX_SENDER_UP",
    "OUTBOX_STORED",
    "outbox_dropped",
    "outbox_send_failures",
    "outbox_sender_quarantined",
]

OUTBOX_STORED: Final = Counter(
    "targetd_outbox_stored", "Notification/telemetry rows committed to the outbox.", registry=REGISTRY
)
OUTBOX_DROPPED: Final = Counter(
    "targetd_outbox_dropped",
    "Rows that could not be stored, by reason (outbox_full, disk_full, storage_busy, storage_error).",
    ["reason"],
    registry=REGISTRY,
)
OUTBOX_BACKLOG: Final = Gauge(
    "targetd_outbox_backlog",
    "Outbox rows waiting to be delivered.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
OUTBOX_QUARANTINED: Final = Gauge(
    "targetd_outbox_quarantined",
    "Outbox rows in quarantine (see `targetd outbox list`).",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
OUTBOX_OLDEST_AGE: Final = Gauge(
    "targetd_outbox_oldest_age_seconds",
    "Age of the oldest waiting outbox row (0: none).",
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
OUTBOX_DEGRADED: Final = Gauge(
    "targetd_outbox_degraded",
    "1 while notifications are dropped or not delivered (decisions are still served).",
    registry=REGISTRY,
    multiprocess_mode="livemax",
)

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

OUTBOX_CIRCUITS_OPEN: Final = Gauge(
    "targetd_outbox_circuits_open",
    "Delivery API hosts the sender has stopped sending to while they keep failing (circuit open).",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)


@lru_cache(maxsize=8)
def outbox_dropped(reason: str) -> Any:
    """The cached child counter of dropped outbox rows for ``reason``."""
    return OUTBOX_DROPPED.labels(reason)


@lru_cache(maxsize=16)
def outbox_send_failures(kind: str) -> Any:
    """The cached child counter of failed sends of class ``kind``."""
    return OUTBOX_SEND_FAILURES.labels(kind)


@lru_cache(maxsize=16)
def outbox_sender_quarantined(reason: str) -> Any:
    """The cached child counter of rows quarantined by the sender for ``reason``."""
    return OUTBOX_SENDER_QUARANTINED.labels(reason)
