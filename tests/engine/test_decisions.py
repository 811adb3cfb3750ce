"""Engine behaviour that the shared artifacts contain but no shared suite checks."""

from __future__ import annotations

from typing import Any

import pytest

from targetd.v1 import delivery_pb2
from targetd_server.engine import (
    InvalidArtifactError,
    RequestValidationError,
    UnsupportedArtifactVersionError,
    compile_artifact,
    decide,
    has_remote_dependency,
)
from targetd_server.engine.allocation import allocation_for
from tests.engine.helpers import (
    CLIENT,
    FIREFOX_MAC,
    SAFARI_MAC,
    artifact,
    as_dict,
    raw_artifact,
    request,
    run,
    utc_ms,
    visitor_in,
)


def _contents(options: Any) -> list[Any]:
    return [as_dict(option).get("content") for option in options]


# ------------------------------------------------------------------------------------------ timeframes

TIMEFRAME_CASES = [
    # Friday (current_day == "5") any time of day: the first rule wins over the date ranges.
    (utc_ms(2021, 2, 12, 0, 0), "<strong>it's friday</strong>"),
    (utc_ms(2021, 2, 12, 23, 59), "<strong>it's friday</strong>"),
    # Thursday 2021-02-11 09:00:00.000 UTC is the first millisecond of range 1 (inclusive bounds).
    (utc_ms(2021, 2, 11, 9, 0), "<strong>date range 1 (feb 11-13)</strong>"),
    (utc_ms(2021, 2, 11, 9, 0) - 1, "<strong>default result</strong>"),
    (utc_ms(2021, 2, 13, 18, 0), "<strong>date range 1 (feb 11-13)</strong>"),
    (utc_ms(2021, 2, 13, 18, 0) + 1, "<strong>default result</strong>"),
    (utc_ms(2021, 2, 16, 12, 0), "<strong>date range 2 (feb 15 - 19, 2021)</strong>"),
    # Friday 2021-02-19 is inside range 2 but the Friday rule has priority.
    (utc_ms(2021, 2, 19, 10, 0), "<strong>it's friday</strong>"),
    (utc_ms(2021, 3, 3, 12, 0), "<strong>default result</strong>"),
]


@pytest.mark.parametrize(("now", "expected"), TIMEFRAME_CASES)
def test_timeframes(now: int, expected: str) -> None:
    req = request({"execute": {"mboxes": [{"name": "mbox-dateranges", "index": 1}]}})
    result = run("TEST_ARTIFACT_TIMEFRAME", req, clock=lambda: now)
    assert _contents(result.response.execute.mboxes[0].options) == [expected]


def test_time_context_is_utc_and_monday_based() -> None:
    from targetd_server.engine.context import time_context

    assert time_context(utc_ms(2021, 2, 14, 7, 5)) == (utc_ms(2021, 2, 14, 7, 5), "0705", 7)  # Sunday
    assert time_context(utc_ms(2021, 2, 15, 23, 59))[1:] == ("2359", 1)  # Monday


# ------------------------------------------------------------------------------------------ priorities


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (FIREFOX_MAC, "<div>prioritized high with targeting: Firefox</div>"),
        (SAFARI_MAC, "<div>prioritized high with targeting: Safari</div>"),
    ],
)
def test_priorities_targeted_rules_first(user_agent: str, expected: str) -> None:
    req = request({"execute": {"mboxes": [{"name": "mbox-prioritized", "index": 1}]}}, user_agent=user_agent)
    result = run("TEST_ARTIFACT_PRIORITIES", req)
    assert len(result.response.execute.mboxes) == 1
    assert _contents(result.response.execute.mboxes[0].options) == [expected]


@pytest.mark.parametrize(("low", "high", "expected"), [(0, 50, "A"), (50.01, 99.99, "B")])
def test_priorities_then_highest_priority_ab(low: float, high: float, expected: str) -> None:
    # Chrome matches no targeted rule: the next activity in rule order (125876, "high") decides, never 125875.
    visitor = visitor_in(125876, low, high)
    req = request(
        {"prefetch": {"mboxes": [{"name": "mbox-prioritized", "index": 1}]}}, visitor={"tntId": visitor}
    )
    result = run("TEST_ARTIFACT_PRIORITIES", req)
    assert len(result.response.prefetch.mboxes) == 1
    assert _contents(result.response.prefetch.mboxes[0].options) == [
        f"<div>prioritized high {expected}</div>"
    ]


# ------------------------------------------------------------------------------------------ macros


def _macro_expected(template: str, meta: dict[str, Any], user: str, pgname: str) -> str:
    values = {
        "${offer.id}": str(meta["offer.id"]),
        "${offer.name}": meta["offer.name"],
        "${campaign.id}": str(meta["activity.id"]),
        "${campaign.name}": meta["activity.name"],
        "${campaign.recipe.id}": str(meta["experience.id"]),
        "${campaign.recipe.name}": meta["experience.name"],
        "${activity.id}": str(meta["activity.id"]),
        "${activity.name}": meta["activity.name"],
        "${activity.experience.id}": str(meta["experience.id"]),
        "${activity.experience.name}": meta["experience.name"],
        "${mbox.name}": "mbox-macros",
        "${mbox.user}": user,
        "${mbox.pgname}": pgname,
        # ${mbox.browserWidth}: no value anywhere, the macro stays as written
    }
    for macro, value in values.items():
        template = template.replace(macro, value)
    return template


@pytest.mark.parametrize(("low", "high", "rule_index"), [(0, 50, 0), (50.01, 99.99, 1)])
def test_campaign_macros_in_html(low: float, high: float, rule_index: int) -> None:
    rule = raw_artifact("TEST_ARTIFACT_CAMPAIGN_MACROS")["rules"]["mboxes"]["mbox-macros"][rule_index]
    template = rule["consequence"]["options"][0]["content"]
    visitor = visitor_in(125891, low, high)
    params = {"user": "Mickey Mouse", "pgname": "blog_page"}
    body = {"execute": {"mboxes": [{"name": "mbox-macros", "index": 1, "parameters": params}]}}
    result = run("TEST_ARTIFACT_CAMPAIGN_MACROS", request(body, visitor={"tntId": visitor}))
    content = _contents(result.response.execute.mboxes[0].options)[0]
    assert content == _macro_expected(template, rule["meta"], "Mickey Mouse", "blog_page")
    assert "${mbox.browserWidth}" in content
    assert "${" not in content.replace("${mbox.browserWidth}", "")


def test_campaign_macros_in_page_load_actions() -> None:
    visitor = visitor_in(125894, 0, 50)
    body = {"execute": {"pageLoad": {"parameters": {"user": "Donald"}}}}
    result = run("TEST_ARTIFACT_CAMPAIGN_MACROS", request(body, visitor={"tntId": visitor}))
    contents = [
        action["content"]
        for option in _contents(result.response.execute.page_load.options)
        for action in option
    ]
    assert contents == ["Hello Donald", "125894", "[unit-test] VEC pageload macros", "target-global-mbox"]


def test_campaign_macros_in_view_actions() -> None:
    visitor = visitor_in(125895, 50.01, 99.99)
    body = {"prefetch": {"views": [{"name": "contact"}]}}
    result = run("TEST_ARTIFACT_CAMPAIGN_MACROS", request(body, visitor={"tntId": visitor}))
    (view,) = result.response.prefetch.views
    (option,) = _contents(view.options)
    assert (
        option[0]["content"] == '<span id="action_insert_16123954385824899">[unit-test] VEC SPA macros</span>'
    )


def test_macros_do_not_touch_the_compiled_artifact() -> None:
    body = {"execute": {"mboxes": [{"name": "mbox-macros", "index": 1, "parameters": {"user": "First"}}]}}
    first = run("TEST_ARTIFACT_CAMPAIGN_MACROS", request(body))
    body["execute"]["mboxes"][0]["parameters"] = {"user": "Second"}
    second = run("TEST_ARTIFACT_CAMPAIGN_MACROS", request(body))
    assert "First" in _contents(first.response.execute.mboxes[0].options)[0]
    assert "Second" in _contents(second.response.execute.mboxes[0].options)[0]
    assert "First" not in _contents(second.response.execute.mboxes[0].options)[0]


# ------------------------------------------------------------------------------------------ XT pageLoad

XT = "TEST_ARTIFACT_PAGELOAD_VEC_XT"
XT_TOKENS = {
    "greg": "REn9frV6SK6mYNleRYo14mqipfsIHvVzTQxHolz2IpSCnQ9Y9OaLL2gsdrWQTvE54PwSz67rmXWmSnkXpSSS2Q==",
    "jason": "REn9frV6SK6mYNleRYo14pNWHtnQtQrJfmRrQugEa2qCnQ9Y9OaLL2gsdrWQTvE54PwSz67rmXWmSnkXpSSS2Q==",
    "default": "REn9frV6SK6mYNleRYo14greqXMfVUcUx0s/BHR5kCKCnQ9Y9OaLL2gsdrWQTvE54PwSz67rmXWmSnkXpSSS2Q==",
}


def _xt_rules(experience: int) -> list[dict[str, Any]]:
    rules = raw_artifact(XT)["rules"]["mboxes"]["target-global-mbox"]
    return [r for r in rules if r["meta"]["experience.id"] == experience]


@pytest.mark.parametrize(
    ("params", "experience", "token"),
    [
        ({"greg": "correct"}, 0, "greg"),
        ({"jason": "correct"}, 1, "jason"),
        ({}, 2, "default"),
        ({"greg": "correct", "jason": "correct"}, 0, "greg"),
    ],
)
def test_xt_page_load_execute_one_experience(params: dict[str, str], experience: int, token: str) -> None:
    rules = _xt_rules(experience)
    body = {"execute": {"pageLoad": {"parameters": params}}}
    result = run(XT, request(body, visitor={"thirdPartyId": "any"}))
    page_load = as_dict(result.response.execute.page_load)
    # One experience per activity (one rule per ruleKey); execute drops options with neither type nor content.
    expected = [o["content"] for r in rules for o in r["consequence"]["options"] if "content" in o]
    assert [o["content"] for o in page_load["options"]] == expected
    assert all("eventToken" not in o for o in page_load["options"])
    # Click metrics de-duplicated by event token.
    assert page_load["metrics"] == [
        {
            "type": "click",
            "selector": "HTML > BODY > DIV.offer:eq(0) > IMG:nth-of-type(1)",
            "eventToken": "oxEgcYf3wVy4XTOQzn3RWA==",
        }
    ]
    # One display notification for the global mbox with the experience's (single, shared) token.
    assert [(n.mbox.name, list(n.tokens)) for n in result.notifications] == [
        ("target-global-mbox", [XT_TOKENS[token]])
    ]


def test_xt_page_load_prefetch_keeps_every_option_with_token() -> None:
    body = {"prefetch": {"pageLoad": {"parameters": {"jason": "correct"}}}}
    result = run(XT, request(body, visitor={"thirdPartyId": "any"}))
    page_load = as_dict(result.response.prefetch.page_load)
    assert len(page_load["options"]) == 4
    assert {o["eventToken"] for o in page_load["options"]} == {XT_TOKENS["jason"]}
    assert "metrics" not in page_load
    assert result.notifications == []


def test_page_load_only_when_requested() -> None:
    # SDK bug 0.5(d) is not reproduced: an mbox-only execute does not evaluate the global mbox.
    body = {"execute": {"mboxes": [{"name": "mbox-magician", "index": 1}]}}
    result = run("TEST_ARTIFACT_GLOBAL_MBOX", request(body))
    assert not result.response.execute.HasField("page_load")
    assert all(n.mbox.name != "target-global-mbox" for n in result.notifications)


# ------------------------------------------------------------------------------------------ feature flags


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (
            0,
            50,
            {
                "paymentExperience": "legacy",
                "showFeatureX": False,
                "paymentGatewayVersion": 2.3,
                "customerFeedbackValue": 10,
            },
        ),
        (
            50.01,
            99.99,
            {
                "paymentExperience": "alpha10",
                "showFeatureX": True,
                "paymentGatewayVersion": 3.1,
                "customerFeedbackValue": 99,
            },
        ),
    ],
)
def test_feature_flags(low: float, high: float, expected: dict[str, Any]) -> None:
    visitor = visitor_in(125885, low, high)
    body = {"execute": {"mboxes": [{"name": "mbox-feature-flags", "index": 1}]}}
    result = run("TEST_ARTIFACT_FEATURE_FLAG", request(body, visitor={"marketingCloudVisitorId": visitor}))
    assert _contents(result.response.execute.mboxes[0].options) == [expected]
    assert result.response.status == 200


def test_remote_mbox_gives_206() -> None:
    body = {
        "execute": {
            "mboxes": [{"name": "mbox-feature-flags", "index": 1}, {"name": "remote-only-mbox-a", "index": 2}]
        }
    }
    result = run("TEST_ARTIFACT_FEATURE_FLAG", request(body))
    assert result.response.status == 206
    assert result.remote_mboxes == ("remote-only-mbox-a",)
    assert result.has_remote_dependency
    # The remote mbox is still answered locally, blank.
    assert as_dict(result.response.execute.mboxes[1]) == {"index": 2, "name": "remote-only-mbox-a"}


def test_page_load_counts_as_global_mbox_for_hybrid() -> None:
    req = request({"prefetch": {"pageLoad": {}}})
    assert has_remote_dependency(artifact("TEST_ARTIFACT_GLOBAL_MBOX"), req).remote_mboxes == (
        "target-global-mbox",
    )
    assert not has_remote_dependency(artifact("TEST_ARTIFACT_PROPERTIES"), req).remote_needed


def test_unnamed_views_mean_all_remote_views() -> None:
    raw = dict(raw_artifact("TEST_ARTIFACT_VIEWS"), remoteViews=["checkout"])
    compiled = compile_artifact(raw)
    assert has_remote_dependency(compiled, request({"prefetch": {"views": [{}]}})).remote_views == (
        "checkout",
    )
    named = request({"prefetch": {"views": [{"name": "home"}, {"name": "cart"}]}})
    assert has_remote_dependency(compiled, named).remote_views == ("cart",)


# ------------------------------------------------------------------------------------------ artifacts


def test_unsupported_version() -> None:
    with pytest.raises(UnsupportedArtifactVersionError) as caught:
        compile_artifact(raw_artifact("TEST_ARTIFACT_UNSUPPORTED"))
    assert str(caught.value) == (
        "The decisioning artifact version (99.0.0) is not supported. "
        "This library is compatible with this major version: 1"
    )


def test_blank_artifact_answers_blank() -> None:
    compiled = compile_artifact(raw_artifact("TEST_ARTIFACT_BLANK"))
    assert compiled.rule_count == 0
    assert not compiled.geo_targeting_enabled  # "hasGeoTargeting" is not the artifact's key
    body = {"execute": {"mboxes": [{"name": "anything", "index": 3}]}, "prefetch": {"views": [{}]}}
    result = decide(compiled, request(body), client=CLIENT)
    assert as_dict(result.response.execute) == {"mboxes": [{"index": 3, "name": "anything"}]}
    assert list(result.response.prefetch.views) == []
    assert result.notifications == []
    assert result.response.status == 206  # not in localMboxes


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "must be a JSON object"),
        ({"rules": {}}, "version must be a non-empty string"),
        ({"version": "x.1"}, "must start with a major number"),
        ({"version": "1.0.0", "rules": []}, "rules must be an object"),
        ({"version": "1.0.0", "rules": {"mboxes": {"m": {}}}}, "rules.mboxes.m must be a list"),
        (
            {"version": "1.0.0", "rules": {"mboxes": {"m": [{"consequence": {}}]}}},
            r"m\[0\].condition is required",
        ),
        ({"version": "1.0.0", "rules": {"mboxes": {"m": [{"condition": {"bad": []}}]}}}, "Unrecognized"),
        ({"version": "1.0.0", "responseTokens": "x"}, "responseTokens must be a list of strings"),
    ],
)
def test_malformed_artifacts(raw: Any, message: str) -> None:
    with pytest.raises(InvalidArtifactError, match=message):
        compile_artifact(raw)


def test_compile_does_not_copy_or_mutate() -> None:
    raw = raw_artifact("TEST_ARTIFACT_AB_SIMPLE")
    compiled = compile_artifact(raw)
    assert compiled.raw is raw
    run("TEST_ARTIFACT_AB_SIMPLE", request({"execute": {"mboxes": [{"name": "mbox-magician"}]}}))
    assert raw == raw_artifact("TEST_ARTIFACT_AB_SIMPLE")


# ------------------------------------------------------------------------------------------ properties

PROPERTY_X = "f12c912a-792f-6c01-4977-65d39558c82e"
PROPERTY_Y = "8ce2d3e9-b299-c0ea-2e0c-2e21255db6bb"


def _property_contents(req: delivery_pb2.DeliveryRequest, **kwargs: Any) -> list[Any]:
    result = run("TEST_ARTIFACT_PROPERTIES", req, **kwargs)
    return [
        c.get("property") if isinstance(c, dict) else c
        for c in _contents(result.response.prefetch.page_load.options)
    ]


def test_property_default_token_applies_when_request_has_none() -> None:
    req = request({"prefetch": {"pageLoad": {}}})
    assert _property_contents(req) == ["<div>Chrometastic</div>"]
    assert _property_contents(req, property_token=PROPERTY_Y) == ["<div>Chrometastic</div>", "property Y"]


def test_property_request_token_wins_over_default() -> None:
    req = request({"prefetch": {"pageLoad": {}}, "property": {"token": PROPERTY_X}})
    assert _property_contents(req, property_token=PROPERTY_Y) == ["<div>Chrometastic</div>", "property X"]
    result = run(
        "TEST_ARTIFACT_PROPERTIES", request({"prefetch": {"pageLoad": {}}}), property_token=PROPERTY_Y
    )
    assert result.request.property.token == PROPERTY_Y


# ------------------------------------------------------------------------------------------ parameters


def _param_artifact() -> Any:
    def rule(key: str, condition: Any, content: str) -> dict[str, Any]:
        return {
            "ruleKey": key,
            "activityId": 1,
            "meta": {"activity.id": 1},
            "condition": condition,
            "consequence": {"name": "m", "options": [{"type": "html", "content": content}]},
        }

    return compile_artifact(
        {
            "version": "1.0.0",
            "localMboxes": ["m"],
            "rules": {
                "mboxes": {
                    "m": [
                        rule("1", {"==": [{"var": "mbox.a"}, "Red"]}, "plain"),
                        rule("2", {"==": [{"var": "mbox.a.b_lc"}, "forty-two"]}, "nested"),
                        rule("3", True, "default"),
                    ]
                }
            },
        }
    )


@pytest.mark.parametrize(
    "params",
    [{"a": "Red", "a.b": "Forty-Two"}, {"a.b": "Forty-Two", "a": "Red"}, {"a": "", "a.b": "Forty-Two"}],
)
def test_param_collision_nested_wins(params: dict[str, str]) -> None:
    # SDK bug 0.5(k): the plain and the dotted key share the head "a"; targetd decides, nested wins.
    body = {"execute": {"mboxes": [{"name": "m", "index": 1, "parameters": params}]}}
    result = decide(_param_artifact(), request(body), client=CLIENT)
    assert _contents(result.response.execute.mboxes[0].options) == ["nested"]


def test_param_context_unflattening() -> None:
    from targetd_server.engine.context import mbox_params_context

    assert mbox_params_context({"favorite.color": "Blue", "x": "Y", "bad..key": "v", ".lead": "w"}) == {
        "favorite": {"color": "Blue", "color_lc": "blue"},
        "x": "Y",
        "x_lc": "y",
        "bad..key": "v",
        "bad..key_lc": "v",
        ".lead": "w",
        ".lead_lc": "w",
    }
    assert mbox_params_context({"a": "Red", "a.b": "42"}) == {"a": {"b": "42", "b_lc": "42"}}
    assert mbox_params_context({"a.b": "1", "a.b.c": "2"}) == {"a": {"b": {"c": "2", "c_lc": "2"}}}


# ------------------------------------------------------------------------------------------ request handling


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"execute": {}}, "Either pageLoad or mboxes is required in execute"),
        ({"prefetch": {}}, "Either views, pageLoad or mboxes is required in prefetch"),
    ],
)
def test_request_validation(body: dict[str, Any], message: str) -> None:
    with pytest.raises(RequestValidationError, match=message):
        run("TEST_ARTIFACT_AB_SIMPLE", request(body))


def test_generated_tnt_id_and_request_id() -> None:
    body = {"execute": {"mboxes": [{"name": "mbox-magician", "index": 1}]}}
    req = request(body, visitor={})
    result = run("TEST_ARTIFACT_AB_SIMPLE", req, location_hint="28")
    assert result.request.request_id == "id-1"
    assert result.request.id.tnt_id == "id2.28_0"
    assert result.response.id.tnt_id == "id2.28_0"
    assert not req.HasField("request_id") and not req.id.tnt_id  # the caller's request is untouched
    # The allocation used the generated tntId before its dot.
    visitor = result.request.id.tnt_id.split(".")[0]
    allocation = allocation_for(f"{CLIENT}.125873.{visitor}.0")
    expected = (
        {"doMagic": True, "importantValue": 150}
        if allocation <= 50
        else {"doMagic": False, "importantValue": 75}
    )
    assert _contents(result.response.execute.mboxes[0].options) == [expected]


def test_caller_request_id_is_kept_and_authenticated_customer_needs_no_tnt_id() -> None:
    body = {"requestId": "mine", "execute": {"mboxes": [{"name": "mbox-magician"}]}}
    visitor = {"customerIds": [{"id": "c1", "integrationCode": "crm", "authenticatedState": "authenticated"}]}
    result = run("TEST_ARTIFACT_AB_SIMPLE", request(body, visitor=visitor))
    assert result.response.request_id == "mine"
    assert not result.request.id.tnt_id


def test_trace_only_when_requested() -> None:
    body: dict[str, Any] = {"prefetch": {"mboxes": [{"name": "mbox-magician", "index": 1}]}}
    assert not run("TEST_ARTIFACT_AB_SIMPLE", request(body)).response.prefetch.mboxes[0].HasField("trace")
    body["trace"] = {}
    assert run("TEST_ARTIFACT_AB_SIMPLE", request(body)).response.prefetch.mboxes[0].HasField("trace")


def test_notifications_and_telemetry_entry() -> None:
    body = {
        "execute": {"mboxes": [{"name": "mbox-magician", "index": 1}, {"name": "mbox-magician", "index": 2}]},
        "prefetch": {"mboxes": [{"name": "mbox-salutations"}]},
    }
    now = utc_ms(2020, 3, 25, 1, 5)
    result = run("TEST_ARTIFACT_AB_MULTI_SIMPLE", request(body), clock=lambda: now)
    # The same mbox twice: its tokens are notified once; prefetch never notifies.
    assert len(result.notifications) == 1
    note = as_dict(result.notifications[0])
    assert (
        note["type"] == "display" and note["timestamp"] == now and note["mbox"] == {"name": "mbox-magician"}
    )
    entry = as_dict(result.telemetry_entry)
    assert entry["mode"] == "local" and entry["timestamp"] == now
    assert entry["features"] == {
        "decisioningMethod": "on-device",
        "executeMboxCount": 2,
        "prefetchMboxCount": 1,
    }
    off = run("TEST_ARTIFACT_AB_MULTI_SIMPLE", request(body), telemetry_enabled=False)
    assert off.telemetry_entry is None
