"""Validation of the callers' options, with the SDKs' messages (Node's wording where the two differ).

Pure functions over the request messages; each raises :class:`InvalidRequestError` naming the field.
"""

from __future__ import annotations

from targetd.v1 import delivery_pb2
from targetd_server.errors import InvalidRequestError


def validate_delivery_request(request: delivery_pb2.DeliveryRequest, *, present: bool) -> None:
    """The checks of the SDKs' ``validate_get_offers_options`` on the Delivery request."""
    if not present:
        raise InvalidRequestError("Request object is required", field="request")
    if request.HasField("execute"):
        execute = request.execute
        if not execute.HasField("page_load") and not execute.mboxes:
            raise InvalidRequestError(
                "Either pageLoad or mboxes is required in execute", field="request.execute"
            )
    if request.HasField("prefetch"):
        prefetch = request.prefetch
        if not prefetch.HasField("page_load") and not prefetch.views and not prefetch.mboxes:
            raise InvalidRequestError(
                "Either views, pageLoad or mboxes is required in prefetch", field="request.prefetch"
            )
