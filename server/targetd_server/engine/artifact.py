"""Compile a rules artifact (schema v1) once into an immutable, indexed :class:`CompiledArtifact`.

Everything that does not depend on the request is done here, so that a decision never copies the artifact:
* rules indexed by mbox and by view (priority order kept), the global mbox's rules, all view rules;
* conditions compiled into closures (:mod:`.jsonlogic`), with a flag for "reads ``allocation``";
* every consequence pre-built as serialised protobuf messages for each response shape it can take
  (execute mbox, prefetch mbox, view, execute/prefetch pageLoad) with the Node post-processing already
  applied: execute keeps options with a type or a content, drops event tokens and keeps click metrics;
  prefetch gives an option without token the token of the display metric at its index and drops metrics
  (views keep them); static response tokens (``activity.*``, ``experience.*``, ``offer.*``, ``option.*``
  listed in ``responseTokens``, plus ``activity.decisioningMethod``) are already in each option;
* the display event tokens (notifications) and campaign-macro templates of each rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from targetd.v1 import delivery_pb2
from targetd_server.engine.errors import InvalidArtifactError, UnsupportedArtifactVersionError
from targetd_server.engine.jsonlogic import Evaluator, compile_logic
from targetd_server.engine.jsvalues import js_str
from targetd_server.engine.protoutil import fill_struct, fill_value
from targetd_server.engine.urls import warm_up

__all__ = [
    "SUPPORTED_MAJOR_VERSION",
    "CompiledArtifact",
    "CompiledRule",
    "MacroSlot",
    "RuleShape",
    "compile_artifact",
]

SUPPORTED_MAJOR_VERSION = 1
DEFAULT_GLOBAL_MBOX = "target-global-mbox"
DECISIONING_METHOD_TOKEN = "activity.decisioningMethod"

_META_TOKENS = (
    "activity.id",
    "activity.name",
    "activity.type",
    "experience.id",
    "experience.name",
    "location.id",
    "location.name",
    "location.type",
    "offer.id",
    "offer.name",
    "option.id",
    "option.name",
)
# response token → key of the rule context's ``geo`` object
GEO_TOKENS = (
    ("geo.city", "city"),
    ("geo.country", "country"),
    ("geo.state", "region"),
    ("geo.latitude", "latitude"),
    ("geo.longitude", "longitude"),
)
_OPTION_TYPES = {
    "html": delivery_pb2.OPTION_TYPE_HTML,
    "json": delivery_pb2.OPTION_TYPE_JSON,
    "redirect": delivery_pb2.OPTION_TYPE_REDIRECT,
    "dynamic": delivery_pb2.OPTION_TYPE_DYNAMIC,
    "actions": delivery_pb2.OPTION_TYPE_ACTIONS,
}
_METRIC_TYPES = {"click": delivery_pb2.METRIC_TYPE_CLICK, "display": delivery_pb2.METRIC_TYPE_DISPLAY}
MACRO_RE = re.compile(r"\$\{([a-zA-Z0-9_.]*?)\}")


@dataclass(frozen=True, slots=True)
class MacroSlot:
    """Where campaign macros sit in a pre-built option list: an ``html`` option's content
    (``action_index`` is -1) or the ``content`` string of one action of an ``actions`` option."""

    option_index: int
    action_index: int
    template: str


@dataclass(frozen=True, slots=True)
class RuleShape:
    """One response shape of a consequence: serialised message bytes plus what a decision patches."""

    payload: bytes
    option_count: int
    macros: tuple[MacroSlot, ...]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule with its condition compiled and its consequence pre-built."""

    rule_key: str
    activity_id: str
    meta: Mapping[str, Any]
    condition: Any
    evaluate: Evaluator
    uses_allocation: bool
    property_tokens: frozenset[str] | None
    name: str | None
    audience_ids: tuple[Any, ...]
    display_tokens: tuple[str, ...]
    execute_mbox: RuleShape
    prefetch_mbox: RuleShape
    view: RuleShape
    execute_page_load: RuleShape
    prefetch_page_load: RuleShape
    click_metrics: tuple[tuple[str | None, bytes], ...]

    def allowed_for(self, property_token: str | None) -> bool:
        """Property filter: rules without tokens apply to every request; rules with tokens only to a
        request whose property token is one of them."""
        tokens = self.property_tokens
        return tokens is None or (property_token is not None and property_token in tokens)


@dataclass(frozen=True, slots=True)
class CompiledArtifact:
    """An immutable, indexed artifact. Build it with :func:`compile_artifact`; share it across threads."""

    version: str
    meta: Mapping[str, Any]
    global_mbox: str
    geo_targeting_enabled: bool
    response_tokens: frozenset[str]
    geo_tokens: tuple[tuple[str, str], ...]
    local_mboxes: frozenset[str]
    remote_mboxes: tuple[str, ...]
    local_views: frozenset[str]
    remote_views: tuple[str, ...]
    mbox_rules: Mapping[str, tuple[CompiledRule, ...]]
    view_rules: Mapping[str, tuple[CompiledRule, ...]]
    all_view_rules: tuple[CompiledRule, ...]
    raw: Mapping[str, Any] = field(repr=False)
    trace_info: Mapping[str, Any] = field(repr=False)

    @property
    def rule_count(self) -> int:
        """Number of rules (mboxes and views)."""
        return sum(len(r) for r in self.mbox_rules.values()) + len(self.all_view_rules)


def _fail(path: str, rule: str) -> InvalidArtifactError:
    return InvalidArtifactError(f"Invalid artifact: {path} {rule}")


def _check_version(raw: Mapping[str, Any]) -> str:
    version = raw.get("version")
    if not isinstance(version, str) or not version:
        raise _fail("version", "must be a non-empty string")
    try:
        major = int(version.split(".")[0])
    except ValueError:
        raise _fail("version", f"must start with a major number, got {version!r}") from None
    if major != SUPPORTED_MAJOR_VERSION:
        raise UnsupportedArtifactVersionError(version, SUPPORTED_MAJOR_VERSION)
    return version


def _string_list(raw: Mapping[str, Any], key: str) -> list[str]:
    value = raw.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(key, "must be a list of strings")
    return value


def _contains_var(node: Any, name: str) -> bool:
    if isinstance(node, dict):
        for op, args in node.items():
            if op == "var":
                first = args[0] if isinstance(args, list) and args else args
                if not isinstance(first, str) or first == name or first.startswith(name + "."):
                    return True
            if _contains_var(args, name):
                return True
    elif isinstance(node, list):
        return any(_contains_var(item, name) for item in node)
    return False


def _build_option(
    raw: Mapping[str, Any], event_token: str | None, tokens: Mapping[str, Any]
) -> delivery_pb2.Option:
    option = delivery_pb2.Option()
    kind = raw.get("type")
    if isinstance(kind, str) and kind in _OPTION_TYPES:
        option.type = _OPTION_TYPES[kind]
    if "content" in raw and raw["content"] is not None:
        fill_value(option.content, raw["content"])
    if event_token is not None:
        option.event_token = event_token
    fill_struct(option.response_tokens, tokens)
    return option


def _build_metric(raw: Mapping[str, Any]) -> delivery_pb2.Metric:
    metric = delivery_pb2.Metric()
    kind = raw.get("type")
    if isinstance(kind, str) and kind in _METRIC_TYPES:
        metric.type = _METRIC_TYPES[kind]
    if isinstance(raw.get("selector"), str):
        metric.selector = raw["selector"]
    if isinstance(raw.get("eventToken"), str):
        metric.event_token = raw["eventToken"]
    return metric


def _macros(options: Sequence[Mapping[str, Any]]) -> tuple[MacroSlot, ...]:
    slots: list[MacroSlot] = []
    for index, option in enumerate(options):
        content = option.get("content")
        if option.get("type") == "html" and isinstance(content, str) and MACRO_RE.search(content):
            slots.append(MacroSlot(index, -1, content))
        elif option.get("type") == "actions" and isinstance(content, list):
            for action_index, action in enumerate(content):
                inner = action.get("content") if isinstance(action, dict) else None
                if isinstance(inner, str) and MACRO_RE.search(inner):
                    slots.append(MacroSlot(index, action_index, inner))
    return tuple(slots)


def _shape(
    message: Any, options: list[Mapping[str, Any]], tokens: Sequence[str | None], static: Mapping[str, Any]
) -> RuleShape:
    for raw, token in zip(options, tokens, strict=True):
        message.options.append(_build_option(raw, token, static))
    return RuleShape(message.SerializeToString(), len(options), _macros(options))


def _compile_rule(raw: Any, path: str, response_tokens: frozenset[str]) -> CompiledRule:
    if not isinstance(raw, dict):
        raise _fail(path, "must be an object")
    meta = raw.get("meta") or {}
    consequence = raw.get("consequence") or {}
    if not isinstance(meta, dict):
        raise _fail(f"{path}.meta", "must be an object")
    if not isinstance(consequence, dict):
        raise _fail(f"{path}.consequence", "must be an object")
    if "condition" not in raw:
        raise _fail(f"{path}.condition", "is required")
    condition = raw["condition"]
    try:
        evaluate = compile_logic(condition)
    except InvalidArtifactError as error:
        raise _fail(f"{path}.condition", str(error)) from None
    options = consequence.get("options") or []
    metrics = consequence.get("metrics") or []
    if not isinstance(options, list) or not all(isinstance(o, dict) for o in options):
        raise _fail(f"{path}.consequence.options", "must be a list of objects")
    if not isinstance(metrics, list) or not all(isinstance(m, dict) for m in metrics):
        raise _fail(f"{path}.consequence.metrics", "must be a list of objects")
    tokens_raw = raw.get("propertyTokens")
    property_tokens = frozenset(str(t) for t in tokens_raw) if tokens_raw else None
    activity = meta.get("activity.id", raw.get("activityId"))
    static = {k: meta[k] for k in _META_TOKENS if k in response_tokens and k in meta}
    static[DECISIONING_METHOD_TOKEN] = "on-device"

    execute_options = [o for o in options if o.get("type") is not None or o.get("content") is not None]
    prefetch_tokens: list[str | None] = []
    for index, option in enumerate(options):
        token = option.get("eventToken")
        if token is None and index < len(metrics) and metrics[index].get("type") == "display":
            token = metrics[index].get("eventToken")
        prefetch_tokens.append(token if isinstance(token, str) else None)
    no_tokens: list[str | None] = [None] * len(execute_options)
    clicks = [m for m in metrics if m.get("type") == "click"]

    execute_mbox = delivery_pb2.MboxResponse()
    for metric in clicks:
        execute_mbox.metrics.append(_build_metric(metric))
    view = delivery_pb2.View()
    for metric in metrics:
        view.metrics.append(_build_metric(metric))
    audience = meta.get("audience.ids") or []
    return CompiledRule(
        rule_key=js_str(raw.get("ruleKey", "")),
        activity_id=js_str(activity),
        meta=MappingProxyType(meta),
        condition=condition,
        evaluate=evaluate,
        uses_allocation=_contains_var(condition, "allocation"),
        property_tokens=property_tokens,
        name=consequence.get("name") if isinstance(consequence.get("name"), str) else None,
        audience_ids=tuple(audience) if isinstance(audience, list) else (),
        display_tokens=tuple(o["eventToken"] for o in options if isinstance(o.get("eventToken"), str)),
        execute_mbox=_shape(execute_mbox, execute_options, no_tokens, static),
        prefetch_mbox=_shape(delivery_pb2.PrefetchMboxResponse(), options, prefetch_tokens, static),
        view=_shape(view, options, prefetch_tokens, static),
        execute_page_load=_shape(delivery_pb2.PageLoadResponse(), execute_options, no_tokens, static),
        prefetch_page_load=_shape(delivery_pb2.PageLoadResponse(), options, prefetch_tokens, static),
        click_metrics=tuple(
            (
                m.get("eventToken") if isinstance(m.get("eventToken"), str) else None,
                _build_metric(m).SerializeToString(),
            )
            for m in clicks
        ),
    )


def _compile_group(
    raw: Any, path: str, response_tokens: frozenset[str]
) -> dict[str, tuple[CompiledRule, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _fail(path, "must be an object")
    result: dict[str, tuple[CompiledRule, ...]] = {}
    for name, rules in raw.items():
        if not isinstance(rules, list):
            raise _fail(f"{path}.{name}", "must be a list of rules")
        result[name] = tuple(
            _compile_rule(rule, f"{path}.{name}[{i}]", response_tokens) for i, rule in enumerate(rules)
        )
    return result


def compile_artifact(
    raw: Any,
    *,
    artifact_location: str | None = None,
    polling_interval_ms: int = 0,
    retrieved_at_ms: int | None = None,
    retrieval_count: int = 1,
) -> CompiledArtifact:
    """Validate and compile a parsed ``rules.json``.

    ``artifact_location`` etc. only feed the ``artifact`` section of traces (``None`` = from a payload,
    reported as "Not Applicable" like the SDKs). Raises :class:`UnsupportedArtifactVersionError` for a
    major version other than 1 and :class:`InvalidArtifactError` for anything malformed. The raw
    artifact is kept by reference (never copied, never mutated).
    """
    if not isinstance(raw, Mapping):
        raise InvalidArtifactError("Invalid artifact: the artifact must be a JSON object")
    version = _check_version(raw)
    meta = raw.get("meta") or {}
    if not isinstance(meta, dict):
        raise _fail("meta", "must be an object")
    global_mbox = raw.get("globalMbox") or DEFAULT_GLOBAL_MBOX
    if not isinstance(global_mbox, str):
        raise _fail("globalMbox", "must be a string")
    response_tokens = frozenset(_string_list(raw, "responseTokens"))
    rules = raw.get("rules")
    if rules is None:
        rules = {}
    if not isinstance(rules, dict):
        raise _fail("rules", "must be an object")
    mbox_rules = _compile_group(rules.get("mboxes"), "rules.mboxes", response_tokens)
    view_rules = _compile_group(rules.get("views"), "rules.views", response_tokens)
    retrieved = datetime.fromtimestamp((retrieved_at_ms or 0) / 1000, tz=UTC) if retrieved_at_ms else None
    trace_info: dict[str, Any] = {
        "artifactLocation": artifact_location or "Not Applicable",
        "pollingInterval": polling_interval_ms,
        # Node snapshots its provider's flag when the tracer is made, before anything could halt polling.
        "pollingHalted": False,
        "artifactVersion": version,
        "artifactRetrievalCount": retrieval_count,
    }
    if retrieved is not None:
        trace_info["artifactLastRetrieved"] = retrieved.isoformat().replace("+00:00", "Z")
    trace_info.update(meta)
    warm_up()
    return CompiledArtifact(
        version=version,
        meta=MappingProxyType(meta),
        global_mbox=global_mbox,
        geo_targeting_enabled=raw.get("geoTargetingEnabled") is True,
        response_tokens=response_tokens,
        geo_tokens=tuple(t for t in GEO_TOKENS if t[0] in response_tokens),
        local_mboxes=frozenset(_string_list(raw, "localMboxes")),
        remote_mboxes=tuple(_string_list(raw, "remoteMboxes")),
        local_views=frozenset(_string_list(raw, "localViews")),
        remote_views=tuple(_string_list(raw, "remoteViews")),
        mbox_rules=MappingProxyType(mbox_rules),
        view_rules=MappingProxyType(view_rules),
        all_view_rules=tuple(rule for group in view_rules.values() for rule in group),
        raw=raw,
        trace_info=MappingProxyType(trace_info),
    )
