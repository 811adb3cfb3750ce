"""The transport to Adobe Target, and nothing else: the Delivery API HTTP client, the IP geo lookup and
the durable outbox. No decision logic lives here and nothing here imports the application layer
(``targetd_server.calls``).

Parts: ``http`` (the Delivery API client: host selection, headers, errors), ``geo`` (cached IP lookups),
``outbox`` (SQLite, background sender), ``outbox_files`` (one file per live process, adoption of the
files of gone ones).
"""

from targetd_server.delivery.geo import GeoLookup
from targetd_server.delivery.http import DeliveryApi, target_host
from targetd_server.delivery.outbox import Outbox, OutboxStats
from targetd_server.delivery.outbox_files import claim_outbox_path

__all__ = ["DeliveryApi", "GeoLookup", "Outbox", "OutboxStats", "claim_outbox_path", "target_host"]
