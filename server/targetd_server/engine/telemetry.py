"""Telemetry entries and Node's ``TelemetryProvider`` store.

Node keeps telemetry in an in-memory store filled by the client after every decision
(``addDeliveryRequestEntry``) and by the artifact provider after every download
(``addArtifactRequestEntry``); the store is drained into the next request sent to the Delivery API
(``addTelemetryToDeliveryRequest``), which for on-device decisioning is the notification request.

``decide`` only builds the per-request entry (:func:`delivery_request_entry`) and returns it as data; the
caller owns a :class:`TelemetryProvider` (one per client) and adds entries to it. The store is a plain
list: appends and the drain's swap are atomic under the GIL, so no lock (and no thread) is needed.
Numbers are rounded to two decimals as Node does.
"""

from __future__ import annotations

from targetd.v1 import delivery_pb2

__all__ = ["ARTIFACT_DOWNLOAD_REQUEST_ID", "TelemetryProvider", "delivery_request_entry", "request_features"]

ARTIFACT_DOWNLOAD_REQUEST_ID = "ArtifactDownload"


def _round(value: float) -> float:
    return round(value, 2)


def request_features(
    request: delivery_pb2.DeliveryRequest, decisioning_method: delivery_pb2.DecisioningMethod.ValueType
) -> delivery_pb2.TelemetryFeatures:
    """``features`` of an entry: the method plus counts of what the request asked for (only non-zero)."""
    features = delivery_pb2.TelemetryFeatures(decisioning_method=decisioning_method)
    if request.HasField("execute"):
        if request.execute.mboxes:
            features.execute_mbox_count = len(request.execute.mboxes)
        if request.execute.HasField("page_load"):
            features.execute_page_load = True
    if request.HasField("prefetch"):
        if request.prefetch.mboxes:
            features.prefetch_mbox_count = len(request.prefetch.mboxes)
        if request.prefetch.HasField("page_load"):
            features.prefetch_page_load = True
        if request.prefetch.views:
            features.prefetch_view_count = len(request.prefetch.views)
    return features


def delivery_request_entry(
    request: delivery_pb2.DeliveryRequest,
    *,
    timestamp_ms: int,
    execution_ms: float,
    parsing_ms: float | None = None,
    decisioning_method: delivery_pb2.DecisioningMethod.ValueType = delivery_pb2.DECISIONING_METHOD_ON_DEVICE,
) -> delivery_pb2.TelemetryEntry:
    """Node ``addDeliveryRequestEntry``'s entry: ``mode`` is ``local`` for on-device, ``edge`` otherwise."""
    entry = delivery_pb2.TelemetryEntry(
        request_id=request.request_id,
        timestamp=timestamp_ms,
        execution=_round(execution_ms),
        mode=(
            delivery_pb2.EXECUTION_MODE_LOCAL
            if decisioning_method == delivery_pb2.DECISIONING_METHOD_ON_DEVICE
            else delivery_pb2.EXECUTION_MODE_EDGE
        ),
    )
    if parsing_ms is not None:
        entry.parsing = _round(parsing_ms)
    entry.features.CopyFrom(request_features(request, decisioning_method))
    return entry


class TelemetryProvider:
    """Node's TelemetryProvider: collects entries while enabled and hands them to the next request."""

    __slots__ = ("_entries", "enabled")

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._entries: list[delivery_pb2.TelemetryEntry] = []

    def add_entry(self, entry: delivery_pb2.TelemetryEntry) -> None:
        """Store an entry (ignored when telemetry is disabled)."""
        if self.enabled:
            self._entries.append(entry)

    def add_artifact_request_entry(
        self,
        *,
        timestamp_ms: int,
        execution_ms: float,
        parsing_ms: float | None = None,
        request_timing: delivery_pb2.TelemetryRequest | None = None,
    ) -> None:
        """The entry of one artifact download: ``{requestId: "ArtifactDownload", timestamp, execution,
        parsing?, request?}``."""
        entry = delivery_pb2.TelemetryEntry(
            request_id=ARTIFACT_DOWNLOAD_REQUEST_ID, timestamp=timestamp_ms, execution=_round(execution_ms)
        )
        if parsing_ms is not None:
            entry.parsing = _round(parsing_ms)
        if request_timing is not None:
            entry.request.CopyFrom(request_timing)
        self.add_entry(entry)

    def has_entries(self) -> bool:
        """True when entries are waiting to be sent."""
        return bool(self._entries)

    def drain(self) -> list[delivery_pb2.TelemetryEntry]:
        """Take every stored entry (oldest first), leaving the store empty."""
        entries, self._entries = self._entries, []
        return entries

    def add_telemetry_to_delivery_request(self, request: delivery_pb2.DeliveryRequest) -> None:
        """Node ``addTelemetryToDeliveryRequest``: move the stored entries into ``request.telemetry``."""
        entries = self.drain()
        if entries:
            request.telemetry.entries.extend(entries)
