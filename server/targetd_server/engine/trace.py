"""Decision traces (only built when ``request.trace`` is present), with Node's ``RequestTracer`` content.

One tracer per mode (execute, prefetch) is shared by the items of that mode, in Node's order (mboxes,
views, pageLoad), so ``campaigns`` and ``evaluatedCampaignTargets`` accumulate across items::

    {clientCode, artifact, profile: {visitorId},
     request: {sessionId, pageURL, host, <mbox|view>: {..., type}},
     campaigns: [{id, campaignType, branchId, offers, environment, notifications?}],
     evaluatedCampaignTargets: [{context, campaignId, campaignType, matchedSegmentIds, unmatchedSegmentIds,
                                 matchedRuleConditions, unmatchedRuleConditions}]}

``request.pageURL``/``host`` are the request's ``context.address`` (Node), not the item's own address;
``evaluatedCampaignTargets[].context`` is the rule context of the activity's first evaluation.

When each trace is taken, as Node does it:

* the trace of a satisfied rule (an mbox's option, a view) is a **frozen** copy taken right after that
  rule — Node deep-clones the consequence;
* the trace of a blank mbox and of a pageLoad is **live** (Node keeps a reference): the lists of campaigns
  and targets, their segment ids and the request are those of that moment, but each target's rule
  conditions and each campaign's notifications are the mode's final ones. :meth:`RequestTracer.finish`
  renders live traces at the end of the mode.

Bound: a trace repeats the mode's targets for every item, so its size grows with items times activities.
The entries rendered per response (campaigns, targets, rule conditions and notifications, summed over
every trace) are capped at :data:`TRACE_ENTRY_LIMIT`; past it the request fails with INVALID_ARGUMENT
naming the limit (:class:`TraceLimit`), rather than building a quadratic answer. Normal requests (tens of
items and activities) stay far below it.

Segment ids keep first-seen order (Node); the Python SDK's sorting is not reproduced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2

from targetd.json_format import message_to_dict
from targetd.v1 import delivery_pb2
from targetd_server.engine.artifact import CompiledArtifact, CompiledRule
from targetd_server.engine.errors import RequestValidationError
from targetd_server.engine.protoutil import fill_struct

__all__ = ["TRACE_ENTRY_LIMIT", "RequestTracer", "TraceBase", "TraceLimit"]

TRACE_ENTRY_LIMIT = 20_000
"""Most trace entries (campaigns + targets + rule conditions + notifications, over every trace of one
response) a decision renders."""


class TraceLimit:
    """The entry budget of one response's traces; raises :class:`RequestValidationError` past it."""

    __slots__ = ("used",)

    def __init__(self) -> None:
        self.used = 0

    def spend(self, entries: int) -> None:
        self.used += entries
        if self.used > TRACE_ENTRY_LIMIT:
            raise RequestValidationError(
                f"the traces of this request would hold more than {TRACE_ENTRY_LIMIT} entries "
                "(campaigns, evaluated targets, rule conditions and notifications over every item); "
                "request fewer mboxes/views per call or leave trace out",
                field="request.trace",
            )


class TraceBase:
    """The request-wide part of a trace (client, artifact, profile, session, page) and its budget."""

    __slots__ = ("artifact", "client", "host", "limit", "page_url", "profile", "session_id")

    def __init__(
        self,
        client: str,
        artifact: CompiledArtifact,
        visitor: delivery_pb2.VisitorId,
        session_id: str | None,
        page: Mapping[str, Any],
    ) -> None:
        self.client = client
        self.artifact = dict(artifact.trace_info)
        visitor_id: dict[str, Any] = message_to_dict(visitor)
        tnt = visitor_id.get("tntId")
        if isinstance(tnt, str):  # Node: const [tntId, profileLocation] = tntId.split(".")
            parts = tnt.split(".")
            visitor_id["tntId"] = parts[0]
            if len(parts) > 1:
                visitor_id["profileLocation"] = parts[1]
        self.profile = {"visitorId": visitor_id}
        self.session_id = session_id
        self.page_url = page.get("url", "")
        self.host = page.get("domain", "")
        self.limit = TraceLimit()


class RequestTracer:
    """Collects campaigns and evaluated targets for one mode and renders traces as ``Struct``."""

    __slots__ = ("_artifact", "_base", "_campaigns", "_live", "_mode", "_request", "_targets")

    def __init__(self, base: TraceBase, artifact: CompiledArtifact, mode: str) -> None:
        self._base = base
        self._artifact = artifact
        self._mode = mode
        self._request: dict[str, Any] = {}
        self._campaigns: dict[str, dict[str, Any]] = {}
        self._targets: dict[str, dict[str, Any]] = {}
        self._live: list[tuple[struct_pb2.Struct, dict[str, Any]]] = []

    def trace_request(self, kind: str, item: Any, name: str | None = None) -> None:
        """Record the request item being decided (``kind`` is ``mbox`` or ``view``)."""
        detail: dict[str, Any] = message_to_dict(item)
        if name is not None:
            detail["name"] = name
        detail["type"] = self._mode
        base = self._base
        request: dict[str, Any] = {}
        if base.session_id is not None:
            request["sessionId"] = base.session_id
        request["pageURL"] = base.page_url
        request["host"] = base.host
        request[kind] = detail
        self._request = request

    def trace_rule(self, rule: CompiledRule, context: Mapping[str, Any], satisfied: bool) -> None:
        """Record one rule evaluation (``context`` is not changed afterwards by the caller's contract,
        except ``allocation``, which is per rule: a shallow copy is kept)."""
        meta = rule.meta
        key = rule.activity_id
        if satisfied and key not in self._campaigns:
            offer = meta.get("offer.id")
            self._campaigns[key] = {
                "id": meta.get("activity.id"),
                "campaignType": meta.get("activity.type"),
                "branchId": meta.get("experience.id"),
                "offers": [offer] if offer is not None else [],
                "environment": self._artifact.meta.get("environment"),
            }
        target = self._targets.get(key)
        if target is None:
            target = self._targets[key] = {
                "context": dict(context),
                "campaignId": meta.get("activity.id"),
                "campaignType": meta.get("activity.type"),
                "matchedSegmentIds": [],
                "unmatchedSegmentIds": [],
                "matchedRuleConditions": [],
                "unmatchedRuleConditions": [],
            }
        segments = target["matchedSegmentIds" if satisfied else "unmatchedSegmentIds"]
        for audience in rule.audience_ids:
            if audience not in segments:
                segments.append(audience)
        target["matchedRuleConditions" if satisfied else "unmatchedRuleConditions"].append(rule.condition)

    def trace_execution(self, rule: CompiledRule, notification: Mapping[str, Any] | None) -> None:
        """An executed rule: its campaign gets a ``notifications`` list (Node creates it even when nothing
        new is notified) and the display notification, if any."""
        campaign = self._campaigns.get(rule.activity_id)
        if campaign is not None:
            notes = campaign.setdefault("notifications", [])
            if notification is not None:
                notes.append(dict(notification))

    def _data(self) -> dict[str, Any]:
        base = self._base
        return {
            "clientCode": base.client,
            "artifact": base.artifact,
            "profile": base.profile,
            "request": self._request,
            "campaigns": [dict(c) for c in self._campaigns.values()],
            "evaluatedCampaignTargets": [
                {
                    **t,
                    "matchedSegmentIds": list(t["matchedSegmentIds"]),
                    "unmatchedSegmentIds": list(t["unmatchedSegmentIds"]),
                }
                for t in self._targets.values()
            ],
        }

    def _render(self, target: struct_pb2.Struct, data: dict[str, Any]) -> None:
        entries = len(data["campaigns"]) + len(data["evaluatedCampaignTargets"])
        for campaign in data["campaigns"]:
            entries += len(campaign.get("notifications", ()))
        for evaluated in data["evaluatedCampaignTargets"]:
            entries += len(evaluated["matchedRuleConditions"]) + len(evaluated["unmatchedRuleConditions"])
        self._base.limit.spend(entries)
        fill_struct(target, data)

    def capture(self) -> dict[str, Any]:
        """The trace's lists as they stand now (for :meth:`live_into`)."""
        return self._data()

    def freeze_into(self, target: struct_pb2.Struct) -> None:
        """Write the trace as it stands now into ``target`` (Node's deep-cloned trace)."""
        self._render(target, self._data())

    def live_into(self, target: struct_pb2.Struct, captured: dict[str, Any] | None = None) -> None:
        """Write the trace into ``target`` at :meth:`finish`, with the lists of now (or of ``captured``)
        and the rule conditions and notifications of then (Node's trace kept by reference)."""
        self._live.append((target, self._data() if captured is None else captured))

    def finish(self) -> None:
        """Render the live traces; call once the mode's items are decided."""
        for target, data in self._live:
            self._render(target, data)
        self._live.clear()
