"""The transport to Adobe Target, and nothing else: the Delivery API HTTP client, the IP geo lookup and
the durable outbox. No decision logic lives here and nothing here imports the application layer
(``targetd_server.calls``).

Parts: ``http`` (the Delivery API client: host selection, headers, errors), ``geo`` (cached IP lookups),
``store`` (the SQLite outbox file: rows, quarantine, the sender-side claim/ack/retry API), ``outbox``
(the serving side: group commit, drops), ``outbox_files`` (one file per live process, adoption of the
files of gone ones), ``sender`` (the sender process: claims, merges, POSTs, acks), ``sender_protocol``
(the settings and status lines between the two processes), ``policy`` (its retry
rules per status class), ``supervisor`` (the serving process starts, watches and restarts the sender).
"""

from targetd_server.delivery.geo import GeoLookup
from targetd_server.delivery.http import DeliveryApi, target_host
from targetd_server.delivery.outbox import DROP_REASONS, Outbox, OutboxState
from targetd_server.delivery.outbox_files import claim_outbox_path
from targetd_server.delivery.store import (
    OutboxStore,
    QuarantinedRow,
    Row,
    StoreStats,
    now_ms,
    open_or_replace,
)
from targetd_server.delivery.supervisor import SenderSupervisor

__all__ = [
    "DROP_REASONS",
    "DeliveryApi",
    "GeoLookup",
    "Outbox",
    "OutboxState",
    "OutboxStore",
    "QuarantinedRow",
    "Row",
    "SenderSupervisor",
    "StoreStats",
    "claim_outbox_path",
    "now_ms",
    "open_or_replace",
    "target_host",
]
