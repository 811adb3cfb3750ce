"""The client's edge-cluster hint (the SDKs' ``targetLocationHint``): the configured one, else the one the
start-up ping learns, replaced by the cluster of each Delivery API answer (``preserve_location_hint``).

Loop affinity: read and written on the server's event loop only.
"""

from __future__ import annotations

import logging

from targetd.v1 import delivery_pb2
from targetd_server.calls.cookies import cluster_from_edge_host

log = logging.getLogger("targetd.calls")

__all__ = ["LOCATION_HINT_SESSION_ID", "LocationHint"]

LOCATION_HINT_SESSION_ID = "ping123"  # the SDKs' session id for the location-hint request


class LocationHint:
    """The current hint; ``value`` is None until one is configured or learnt."""

    def __init__(self, configured: str | None) -> None:
        self.value: str | None = configured or None

    def learn(self, request_cluster: str | None, response: delivery_pb2.DeliveryResponse) -> None:
        """Keep the cluster of a Delivery API answer (its ``edgeHost``), else the request's cluster."""
        found = cluster_from_edge_host(response.edge_host or None) or request_cluster
        if found and found != self.value:
            if self.value is None:
                log.info("location hint from the Delivery API: cluster %s", found)
            self.value = found
