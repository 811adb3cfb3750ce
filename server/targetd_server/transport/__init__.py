"""HTTP client concerns, in one place: every request targetd makes itself — the rules artifact, the geo
lookup, the Delivery API — goes through this package. :class:`HttpClient` (aiohttp, on the server's event
loop; ``_client.py``: sessions, the proxy and CA environment read once, capped reads, the Target CDN) for
everything, and :class:`Http1Client` (``_http1.py``: bare keep-alive HTTP/1.1 POSTs) for the notification
sender's low-CPU path. Import from here; the modules are private.
"""

from targetd_server.transport._client import (
    CDN_HOSTS,
    USER_AGENT,
    BodyTooLargeError,
    Environment,
    HttpClient,
    TransportClosedError,
    cdn_base,
    environment,
    read_capped,
)
from targetd_server.transport._http1 import Http1Client

__all__ = [
    "CDN_HOSTS",
    "USER_AGENT",
    "BodyTooLargeError",
    "Environment",
    "Http1Client",
    "HttpClient",
    "TransportClosedError",
    "cdn_base",
    "environment",
    "read_capped",
]
