"""``decide``: one Delivery request against a compiled artifact, Node SDK semantics, no I/O.

Per request: validate (SDK messages), copy the request once and complete it (requestId, tntId, property
token, geo), build the context once (time, user agent, page/referring URL, geo) and compute the visitor
id once. Per mode (execute, then prefetch), in Node's order: mboxes in request order, then (prefetch)
views, then the pageLoad (only when requested). A regular mbox takes the first satisfied rule (priority
order) or comes back blank; the global mbox, the pageLoad and views take every satisfied rule, one per
``ruleKey``.
Responses are assembled by merging the consequences' pre-serialised messages, then patched only where a
request matters: geo response tokens, campaign macros, trace.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from targetd.v1 import delivery_pb2
from targetd_server.engine.allocation import CAMPAIGN_BUCKET_SALT, allocation_for, visitor_id_for_allocation
from targetd_server.engine.artifact import CompiledArtifact, CompiledRule, RuleShape
from targetd_server.engine.context import base_context, mbox_params_context
from targetd_server.engine.jsvalues import truthy
from targetd_server.engine.macros import render_macros
from targetd_server.engine.notifications import NotificationCollector
from targetd_server.engine.remote import has_remote_dependency
from targetd_server.engine.request import (
    Clock,
    IdGenerator,
    complete_request,
    system_clock,
    validate_delivery_request,
)
from targetd_server.engine.telemetry import delivery_request_entry
from targetd_server.engine.trace import RequestTracer, TraceBase
from targetd_server.engine.urls import url_context
from targetd_server.ids import new_id as default_new_id

__all__ = ["DecisionResult", "decide", "validate_delivery_request"]


@dataclass(slots=True)
class DecisionResult:
    """What one on-device decision produced; sending notifications/telemetry is the caller's job."""

    response: delivery_pb2.DeliveryResponse
    request: delivery_pb2.DeliveryRequest
    notifications: list[delivery_pb2.Notification] = field(default_factory=list)
    telemetry_entry: delivery_pb2.TelemetryEntry | None = None
    remote_mboxes: tuple[str, ...] = ()
    remote_views: tuple[str, ...] = ()

    @property
    def has_remote_dependency(self) -> bool:
        """True when some requested mbox or view needs the Delivery API (status 206)."""
        return bool(self.remote_mboxes or self.remote_views)


class _Decider:
    """State of one decision (context, visitor, notifications, tracers)."""

    __slots__ = (
        "allocations",
        "artifact",
        "base",
        "client",
        "device_prefix",
        "geo_values",
        "notes",
        "property_token",
        "trace_base",
    )

    def __init__(
        self,
        artifact: CompiledArtifact,
        request: delivery_pb2.DeliveryRequest,
        *,
        client: str,
        now_ms: int,
        new_id: IdGenerator,
        session_id: str | None,
    ) -> None:
        self.artifact = artifact
        self.client = client
        self.base = base_context(request, now_ms)
        visitor = visitor_id_for_allocation(request.id, "")
        if not visitor:  # only authenticated customer ids: a fresh id, once per request (Node)
            visitor = new_id().replace("-", "")
        self.device_prefix = (f"{client}.", f".{visitor}.{CAMPAIGN_BUCKET_SALT}")
        self.allocations: dict[str, float] = {}
        self.property_token = request.property.token or None
        geo = self.base["geo"]
        self.geo_values = [(token, geo[key]) for token, key in artifact.geo_tokens if key in geo]
        self.notes = NotificationCollector(now_ms, new_id)
        self.trace_base = (
            TraceBase(client, artifact, request.id, session_id, self.base["page"])
            if request.HasField("trace")
            else None
        )

    # ------------------------------------------------------------------ evaluation

    def allocation(self, rule: CompiledRule) -> float:
        found = self.allocations.get(rule.activity_id)
        if found is None:
            prefix, suffix = self.device_prefix
            found = self.allocations[rule.activity_id] = allocation_for(prefix + rule.activity_id + suffix)
        return found

    def item_context(self, item: Any) -> dict[str, Any]:
        context = dict(self.base)
        context["mbox"] = mbox_params_context(item.parameters)
        if item.HasField("address"):
            page = url_context(item.address.url)
            context["page"] = page
            context["referring"] = page
        return context

    def satisfied(self, rule: CompiledRule, context: dict[str, Any], tracer: RequestTracer | None) -> bool:
        if rule.uses_allocation or tracer is not None:
            context["allocation"] = self.allocation(rule)
        result = truthy(rule.evaluate(context))
        if tracer is not None:
            tracer.trace_rule(rule, context, result)
        return result

    def tracer(self, mode: str) -> RequestTracer | None:
        return RequestTracer(self.trace_base, self.artifact, mode) if self.trace_base is not None else None

    # ------------------------------------------------------------------ assembly helpers

    def patch(
        self,
        *,
        options: Any,
        start: int,
        shape: RuleShape,
        rule: CompiledRule,
        item_detail: Mapping[str, Any],
        parameters: Mapping[str, str],
    ) -> None:
        if self.geo_values:
            for index in range(start, start + shape.option_count):
                fields = options[index].response_tokens.fields
                for token, value in self.geo_values:
                    if isinstance(value, str):
                        fields[token].string_value = value
                    else:
                        fields[token].number_value = value
        for slot in shape.macros:
            rendered = render_macros(slot.template, rule.meta, item_detail, parameters)
            content = options[start + slot.option_index].content
            if slot.action_index < 0:
                content.string_value = rendered
            else:
                content.list_value.values[slot.action_index].struct_value.fields[
                    "content"
                ].string_value = rendered

    def notify(self, rule: CompiledRule, name: str, tracer: RequestTracer | None) -> None:
        notification = self.notes.add(name, rule.display_tokens)
        if tracer is not None:
            tracer.trace_execution(
                rule,
                None
                if notification is None
                else {
                    "id": notification.id,
                    "impressionId": notification.impression_id,
                    "timestamp": notification.timestamp,
                    "type": "display",
                    "mbox": {"name": name},
                    "tokens": list(notification.tokens),
                },
            )

    # ------------------------------------------------------------------ mboxes

    def mboxes(self, items: Any, out: Any, execute: bool, tracer: RequestTracer | None) -> None:
        artifact = self.artifact
        token = self.property_token
        for item in items:
            name = item.name
            rules = artifact.mbox_rules.get(name, ())
            is_global = name == artifact.global_mbox
            context = self.item_context(item)
            if tracer is not None:
                tracer.trace_request("mbox", item)
            detail = {"name": name, "index": item.index if item.HasField("index") else None}
            seen: set[str] = set()
            produced = False
            for rule in rules:
                if not rule.allowed_for(token) or (is_global and rule.rule_key in seen):
                    continue
                if not self.satisfied(rule, context, tracer):
                    continue
                response_name = rule.name or name
                if execute:
                    self.notify(rule, response_name, tracer)
                shape = rule.execute_mbox if execute else rule.prefetch_mbox
                response = out.add()
                response.MergeFromString(shape.payload)
                if item.HasField("index"):
                    response.index = item.index
                response.name = response_name
                self.patch(
                    options=response.options,
                    start=0,
                    shape=shape,
                    rule=rule,
                    item_detail=detail,
                    parameters=item.parameters,
                )
                if tracer is not None:
                    tracer.freeze_into(response.trace)
                produced = True
                if not is_global:
                    break
                seen.add(rule.rule_key)
            if not produced and not is_global:
                response = out.add()
                if item.HasField("index"):
                    response.index = item.index
                response.name = name
                if tracer is not None:
                    tracer.live_into(response.trace)

    # ------------------------------------------------------------------ pageLoad

    def page_load(
        self,
        *,
        item: delivery_pb2.RequestDetails,
        out: delivery_pb2.PageLoadResponse,
        execute: bool,
        tracer: RequestTracer | None,
    ) -> None:
        artifact = self.artifact
        name = artifact.global_mbox
        out.SetInParent()
        context = self.item_context(item)
        if tracer is not None:
            tracer.trace_request("mbox", item, name=name)
        detail = {"name": name}
        seen: set[str] = set()
        metric_tokens: set[str | None] = set()
        captured: dict[str, Any] | None = None
        for rule in artifact.mbox_rules.get(name, ()):
            if not rule.allowed_for(self.property_token) or rule.rule_key in seen:
                continue
            if not self.satisfied(rule, context, tracer):
                continue
            seen.add(rule.rule_key)
            if execute:
                self.notify(rule, rule.name or name, tracer)
            shape = rule.execute_page_load if execute else rule.prefetch_page_load
            start = len(out.options)
            out.MergeFromString(shape.payload)
            self.patch(
                options=out.options,
                start=start,
                shape=shape,
                rule=rule,
                item_detail=detail,
                parameters=item.parameters,
            )
            if execute:
                for token, payload in rule.click_metrics:
                    if token not in metric_tokens:
                        metric_tokens.add(token)
                        out.metrics.add().MergeFromString(payload)
            if tracer is not None:
                captured = tracer.capture()
        if tracer is not None and captured is not None:  # Node: the last executed rule's trace, if any
            tracer.live_into(out.trace, captured)

    # ------------------------------------------------------------------ views

    def views(self, items: Any, out: Any, tracer: RequestTracer | None) -> None:
        artifact = self.artifact
        for item in items:
            name = item.name
            rules = artifact.view_rules.get(name, ()) if name else artifact.all_view_rules
            context = self.item_context(item)
            if tracer is not None:
                tracer.trace_request("view", item)
            detail = {"name": name or None, "key": item.key or None}
            by_name: dict[str, delivery_pb2.View] = {}
            seen: set[str] = set()
            for rule in rules:
                if not rule.allowed_for(self.property_token) or rule.rule_key in seen:
                    continue
                if not self.satisfied(rule, context, tracer):
                    continue
                seen.add(rule.rule_key)
                view_name = rule.name or name
                view = by_name.get(view_name)
                first = view is None
                if view is None:
                    view = by_name[view_name] = out.add()
                    view.name = view_name
                    if item.key:
                        view.key = item.key
                start = len(view.options)
                view.MergeFromString(rule.view.payload)
                self.patch(
                    options=view.options,
                    start=start,
                    shape=rule.view,
                    rule=rule,
                    item_detail=detail,
                    parameters=item.parameters,
                )
                if first and tracer is not None:
                    tracer.freeze_into(view.trace)


def decide(
    artifact: CompiledArtifact,
    request: delivery_pb2.DeliveryRequest,
    *,
    client: str,
    session_id: str | None = None,
    location_hint: str | None = None,
    property_token: str | None = None,
    telemetry_enabled: bool = True,
    geo: delivery_pb2.Geo | None = None,
    clock: Clock | None = None,
    id_generator: IdGenerator | None = None,
) -> DecisionResult:
    """Decide ``request`` on-device.

    ``client`` is the Target client code (it salts allocation); ``location_hint`` suffixes a generated
    tntId (``<uuid>.<hint>_0``); ``property_token`` is the default ``property.token``; ``geo`` is the
    result of a geo lookup the caller made when :func:`needs_geo_lookup` said so (merged into
    ``context.geo``); ``clock`` returns epoch milliseconds; ``id_generator`` returns fresh ids (uuid4).
    Raises :class:`RequestValidationError` for an invalid request. The request is not modified.
    """
    started = time.perf_counter()
    validate_delivery_request(request)
    now_ms = (clock or system_clock)()
    new_id = id_generator or default_new_id
    validated = complete_request(
        request, location_hint=location_hint, property_token=property_token, geo=geo, new_id=new_id
    )
    decider = _Decider(
        artifact, validated, client=client, now_ms=now_ms, new_id=new_id, session_id=session_id
    )
    parsed = time.perf_counter()

    response = delivery_pb2.DeliveryResponse(request_id=validated.request_id, client=client)
    response.id.CopyFrom(validated.id)
    if validated.HasField("execute"):
        execute = validated.execute
        out = response.execute
        out.SetInParent()
        tracer = decider.tracer("execute")
        decider.mboxes(execute.mboxes, out.mboxes, True, tracer)
        if execute.HasField("page_load"):
            decider.page_load(item=execute.page_load, out=out.page_load, execute=True, tracer=tracer)
        if tracer is not None:
            tracer.finish()
    if validated.HasField("prefetch"):
        prefetch = validated.prefetch
        pre = response.prefetch
        pre.SetInParent()
        tracer = decider.tracer("prefetch")
        decider.mboxes(prefetch.mboxes, pre.mboxes, False, tracer)
        if prefetch.views:  # Node: mboxes, views, then the pageLoad (one tracer for the mode)
            decider.views(prefetch.views, pre.views, tracer)
        if prefetch.HasField("page_load"):
            decider.page_load(item=prefetch.page_load, out=pre.page_load, execute=False, tracer=tracer)
        if tracer is not None:
            tracer.finish()

    remote = has_remote_dependency(artifact, validated)
    response.status = 206 if remote.remote_needed else 200
    entry = None
    if telemetry_enabled:
        done = time.perf_counter()
        entry = delivery_request_entry(
            validated,
            timestamp_ms=now_ms,
            execution_ms=(done - started) * 1000,
            parsing_ms=(parsed - started) * 1000,
        )
    return DecisionResult(
        response=response,
        request=validated,
        notifications=decider.notes.notifications,
        telemetry_entry=entry,
        remote_mboxes=remote.remote_mboxes,
        remote_views=remote.remote_views,
    )
