"""Decision traces (only built when ``request.trace`` is present; Node ``RequestTracer`` semantics).

One tracer per mode (execute, prefetch) is shared by the items of that mode, so ``campaigns`` and
``evaluatedCampaignTargets`` accumulate across mboxes; each response gets a snapshot taken when it is
post-processed::

    {clientCode, artifact, profile: {visitorId},
     request: {sessionId, pageURL, host, <mbox|view>: {..., type}},
     campaigns: [{id, campaignType, branchId, offers, environment, notifications?}],
     evaluatedCampaignTargets: [{context, campaignId, campaignType, matchedSegmentIds, unmatchedSegmentIds,
                                 matchedRuleConditions, unmatchedRuleConditions}]}

Segment ids keep first-seen order (Node); the Python SDK's sorting is not reproduced.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2

from targetd.json_format import message_to_dict
from targetd.v1 import delivery_pb2
from targetd_server.engine.artifact import CompiledArtifact, CompiledRule
from targetd_server.engine.protoutil import fill_struct

__all__ = ["RequestTracer", "TraceBase"]


class TraceBase:
    """The request-wide part of a trace (client, artifact, profile, session)."""

    __slots__ = ("artifact", "client", "profile", "session_id")

    def __init__(
        self,
        client: str,
        artifact: CompiledArtifact,
        visitor: delivery_pb2.VisitorId,
        session_id: str | None,
    ) -> None:
        self.client = client
        self.artifact = dict(artifact.trace_info)
        visitor_id: dict[str, Any] = message_to_dict(visitor)
        tnt = visitor_id.get("tntId")
        if isinstance(tnt, str):
            head, _, location = tnt.partition(".")
            visitor_id["tntId"] = head
            if location:
                visitor_id["profileLocation"] = location
        self.profile = {"visitorId": visitor_id}
        self.session_id = session_id


class RequestTracer:
    """Collects campaigns and evaluated targets for one mode and renders snapshots as ``Struct``."""

    __slots__ = ("_artifact", "_base", "_campaigns", "_mode", "_request", "_targets")

    def __init__(self, base: TraceBase, artifact: CompiledArtifact, mode: str) -> None:
        self._base = base
        self._artifact = artifact
        self._mode = mode
        self._request: dict[str, Any] = {}
        self._campaigns: dict[str, dict[str, Any]] = {}
        self._targets: dict[str, dict[str, Any]] = {}

    def trace_request(self, kind: str, item: Any, page: Mapping[str, Any], name: str | None = None) -> None:
        """Record the request item being decided (``kind`` is ``mbox`` or ``view``)."""
        detail: dict[str, Any] = message_to_dict(item)
        if name is not None:
            detail["name"] = name
        detail["type"] = self._mode
        request: dict[str, Any] = {}
        if self._base.session_id is not None:
            request["sessionId"] = self._base.session_id
        request["pageURL"] = page.get("url", "")
        request["host"] = page.get("domain", "")
        request[kind] = detail
        self._request = request

    def trace_rule(self, rule: CompiledRule, context: Mapping[str, Any], satisfied: bool) -> None:
        """Record one rule evaluation."""
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
                "context": copy.deepcopy(dict(context)),
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

    def trace_notification(self, rule: CompiledRule, notification: Mapping[str, Any]) -> None:
        """Attach a display notification to the campaign of ``rule``."""
        campaign = self._campaigns.get(rule.activity_id)
        if campaign is not None:
            campaign.setdefault("notifications", []).append(dict(notification))

    def snapshot(self) -> struct_pb2.Struct:
        """The trace as it stands now (a copy: later evaluations do not change it)."""
        base = self._base
        data = {
            "clientCode": base.client,
            "artifact": base.artifact,
            "profile": base.profile,
            "request": self._request,
            "campaigns": list(self._campaigns.values()),
            "evaluatedCampaignTargets": list(self._targets.values()),
        }
        struct = struct_pb2.Struct()
        fill_struct(struct, data)
        return struct
