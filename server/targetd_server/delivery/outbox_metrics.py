"""The ``targetd_outbox_*`` metrics of the serving process (the sender process records its own), in the
service's one registry (:data:`targetd_server.metrics.REGISTRY`). Gauges declare a live multiprocess mode
(``--workers N``: each worker has its own outbox file, so backlog and quarantine sum over the live
workers; degraded and oldest age take the largest).

Thread affinity: any (prometheus-client collectors are thread-safe).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final

from prometheus_client import Counter, Gauge

from targetd_server.metrics import REGISTRY

__all__ = [
    "OUTBOX_BACKLOG",
    "OUTBOX_DEGRADED",
    "OUTBOX_OLDEST_AGE",
    "OUTBOX_QUARANTINED",
    "OUTBOX_STORED",
    "outbox_dropped",
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


@lru_cache(maxsize=8)
def outbox_dropped(reason: str) -> Any:
    """The cached child counter of dropped outbox rows for ``reason``."""
    return OUTBOX_DROPPED.labels(reason)
