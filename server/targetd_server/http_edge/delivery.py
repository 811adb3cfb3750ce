"""``POST /rest/v1/delivery`` mapped onto the application layer (:class:`targetd_server.calls.TargetClient`).

A Delivery API call becomes the call the SDKs would make for it:

* the JSON body is the ``DeliveryRequest`` (parsed once, straight into the call's message; unknown keys are
  ignored, as Target's edge ignores them);
* query ``sessionId`` (required by the spec: 1 to 128 printable characters, no space, ``?`` or ``/``) is the
  call's ``session_id``; ``client``, when sent, must be the configured client (callers that address the
  edge by host name, as Adobe's SDKs do, send none); ``imsOrgId`` and ``version`` are accepted and not
  used (targetd sends its configured ones upstream);
* the ``mbox`` cookie, when a caller forwards it, is the call's ``target_cookie`` (its session wins over
  ``sessionId``, as in the SDKs) and ``mboxEdgeCluster`` its location hint;
* a request with ``execute`` or ``prefetch`` (or with nothing: the SDKs' empty ping) is decided as GetOffers
  decides in hybrid mode: on-device when the applied artifact decides every requested mbox and view, else
  the whole request through the Delivery API; display notifications of on-device decisions go through
  the outbox. Notifications sent beside decisions that were made on-device are sent as SendNotifications
  sends them, before the answer;
* a notifications-only request is SendNotifications.

The answer is the Delivery API response JSON (``envelope.response``), as Target's edge answers, with
every repeated field of a present object written (``"metrics": []``), as the conformance vectors expect.

Loop affinity: the server's event loop. Raises the domain errors of :mod:`targetd_server.errors`
(mapped to HTTP in ``status``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from targetd.json_format import JsonMappingError, message_to_dict, parse_dict
from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from targetd_server.calls import TargetClient
from targetd_server.errors import InvalidRequestError, NotReadyError

__all__ = ["deliver", "offers_call", "session_id_of"]

_MAX_SESSION_ID: Final = 128
_FORBIDDEN_IN_SESSION: Final = frozenset(" ?/")
NOT_READY: Final = (
    "Unable to fulfill request; decisioning engine not ready (no rules artifact applied yet); retry shortly"
)


def session_id_of(query: Mapping[str, str]) -> str:
    """The ``sessionId`` query parameter, checked as the spec describes it. Raises
    :class:`InvalidRequestError` naming ``sessionId``."""
    session = query.get("sessionId")
    if not session:
        raise InvalidRequestError("the sessionId query parameter is required", field="sessionId")
    if len(session) > _MAX_SESSION_ID or not session.isprintable() or _FORBIDDEN_IN_SESSION & set(session):
        raise InvalidRequestError(
            "must be 1 to 128 printable characters, without a space, '?' or '/'", field="sessionId"
        )
    return session


def check_client(query: Mapping[str, str], client: str) -> None:
    """``client``, when sent, names the client this edge serves. Raises :class:`InvalidRequestError`."""
    requested = query.get("client")
    if requested is not None and requested != client:
        raise InvalidRequestError(f"unknown client code {requested!r}", field="client")


def offers_call(body: Any, query: Mapping[str, str], cookies: Mapping[str, str]) -> pb.GetOffersRequest:
    """The GetOffers call for a Delivery API body (already JSON-decoded), query and cookies; hybrid.
    Raises :class:`InvalidRequestError` for a body that is not a Delivery request."""
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object (a Delivery request)", field="body")
    call = pb.GetOffersRequest(
        session_id=session_id_of(query), decisioning_method=delivery_pb2.DECISIONING_METHOD_HYBRID
    )
    try:
        parse_dict(body, call.request, ignore_unknown=True)
    except JsonMappingError as exc:
        raise InvalidRequestError(str(exc), field="body") from None
    cookie = cookies.get("mbox")
    if cookie:
        call.target_cookie = cookie
    cluster = cookies.get("mboxEdgeCluster")
    if cluster:
        call.target_location_hint = cluster
    return call


def _notifications_call(call: pb.GetOffersRequest) -> pb.SendNotificationsRequest:
    """The SendNotifications call for the same visitor: the request without its decisions."""
    notifications = pb.SendNotificationsRequest(session_id=call.session_id)
    notifications.request.CopyFrom(call.request)
    notifications.request.ClearField("execute")
    notifications.request.ClearField("prefetch")
    if call.HasField("target_cookie"):
        notifications.target_cookie = call.target_cookie
    if call.target_location_hint:
        notifications.target_location_hint = call.target_location_hint
    return notifications


async def deliver(client: TargetClient, call: pb.GetOffersRequest) -> dict[str, Any]:
    """Answer one Delivery API call (see the module docstring): the response JSON as a dict."""
    request = call.request
    decides = request.HasField("execute") or request.HasField("prefetch") or not request.notifications
    if not decides:
        envelope = await client.send_notifications(_notifications_call(call))
        return message_to_dict(envelope.response, including_empty_repeated=True)
    if not client.ready:
        raise NotReadyError(NOT_READY)
    envelope = await client.get_offers(call)
    if (
        request.notifications
        and envelope.meta.decisioning_method == delivery_pb2.DECISIONING_METHOD_ON_DEVICE
    ):
        await client.send_notifications(_notifications_call(call))
    return message_to_dict(envelope.response, including_empty_repeated=True)
