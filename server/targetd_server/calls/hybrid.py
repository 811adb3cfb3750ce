"""Routing of a decision between on-device and the Delivery API (reference §3, Node semantics).

* on-device: always local (not ready → UNAVAILABLE);
* server-side: always the Delivery API;
* hybrid: local when the applied artifact decides every requested mbox and view (a pageLoad counts as
  ``target-global-mbox``); otherwise — or before the first artifact is applied — the whole request goes to
  the Delivery API. ``meta`` then lists what needed it.

Loop affinity: the server's event loop.
"""

from __future__ import annotations

from typing import Final

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from targetd_server import metrics
from targetd_server.artifacts import ArtifactSnapshot
from targetd_server.calls.on_device import OnDevice
from targetd_server.calls.options import CallOptions
from targetd_server.calls.server_side import ServerSide
from targetd_server.engine import has_remote_dependency

__all__ = ["route"]

_NAMES: Final = {
    delivery_pb2.DECISIONING_METHOD_ON_DEVICE: "on-device",
    delivery_pb2.DECISIONING_METHOD_SERVER_SIDE: "server-side",
    delivery_pb2.DECISIONING_METHOD_HYBRID: "hybrid",
}


def _counted(
    envelope: pb.TargetDeliveryResponse, asked: delivery_pb2.DecisioningMethod.ValueType
) -> pb.TargetDeliveryResponse:
    """``envelope``, counted in ``targetd_decisions_total`` (the method used, the method asked for)."""
    used = _NAMES.get(envelope.meta.decisioning_method, "server-side")
    metrics.decision_counter(used, _NAMES.get(asked, "server-side")).inc()
    return envelope


async def route(
    request: delivery_pb2.DeliveryRequest,
    options: CallOptions,
    *,
    method: delivery_pb2.DecisioningMethod.ValueType,
    snapshot: ArtifactSnapshot | None,
    on_device: OnDevice,
    server_side: ServerSide,
    time_remaining: float | None,
) -> pb.TargetDeliveryResponse:
    """Decide a validated ``request`` with ``method`` (the call's, else the configured one); each decision
    is counted in ``targetd_decisions_total``."""
    if method == delivery_pb2.DECISIONING_METHOD_ON_DEVICE:
        return _counted(await on_device.decide(request, options, time_remaining), method)
    if snapshot is None:
        return _counted(await server_side.decide(request, options, time_remaining), method)
    dependency = has_remote_dependency(snapshot.compiled, request)
    if method == delivery_pb2.DECISIONING_METHOD_HYBRID and not dependency.remote_needed:
        return _counted(await on_device.decide(request, options, time_remaining), method)
    envelope = await server_side.decide(
        request,
        options,
        time_remaining,
        remote_mboxes=dependency.remote_mboxes,
        remote_views=dependency.remote_views,
    )
    return _counted(envelope, method)
