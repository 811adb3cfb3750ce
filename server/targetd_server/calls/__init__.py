"""The application layer: one Target client and the walk of each call, between the gRPC service
(``targetd_server.service``) and the engine and transport (``engine``, ``artifacts``, ``delivery``).

A call enters at :class:`TargetClient` (``client``), which reads its options once (:class:`CallOptions`,
``options``), validates the request once (``request``) and routes it (``hybrid``) to ``on_device`` or
``server_side``; SendNotifications is ``notifications``. Every path completes the request with the one
``request.complete_request`` and answers with the one ``envelope.build_envelope``. ``cookies`` and
``location`` hold the visitor's cookies and the client's edge-cluster hint.
"""

from targetd_server.calls.client import TargetClient
from targetd_server.calls.options import CallOptions, RequestIdentity

__all__ = ["CallOptions", "RequestIdentity", "TargetClient"]
