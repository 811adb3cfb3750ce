"""The Delivery API over HTTP: ``POST /rest/v1/delivery`` answered as Target's edge answers it, decided
as GetOffers decides in hybrid mode (docs/http-edge.md).

It sits beside the gRPC layer (``targetd_server.service``, which starts and stops it on the same event
loop) and, like it, only maps a protocol onto the application layer (``targetd_server.calls``): ``app``
holds the aiohttp listener and its one middleware (token, errors, metrics), ``delivery`` the mapping of a
Delivery API call onto ``TargetClient``, ``status`` the one place where errors become HTTP status codes and
Target's error JSON.
"""

from targetd_server.http_edge.app import DELIVERY_PATH, HttpEdge

__all__ = ["DELIVERY_PATH", "HttpEdge"]
