"""Traces as Node's RequestTracer builds them (facts checked by the differential test), and their bound."""

from __future__ import annotations

import pytest

from targetd_server.engine import RequestValidationError
from targetd_server.engine.trace import TRACE_ENTRY_LIMIT
from tests.engine.helpers import as_dict, request, run

TRACE = {"authorizationToken": "token"}


def test_trace_request_page_is_the_request_address_not_the_item_address() -> None:
    body = {
        "trace": TRACE,
        "execute": {
            "mboxes": [{"name": "mbox-params", "index": 1, "address": {"url": "https://other.example.com/x"}}]
        },
    }
    result = run("TEST_ARTIFACT_PARAMS", request(body, url="https://www.local-target-test/home"))
    trace = as_dict(result.response.execute.mboxes[0])["trace"]
    assert (trace["request"]["pageURL"], trace["request"]["host"]) == (
        "https://www.local-target-test/home",
        "www.local-target-test",  # psl: an unlisted suffix keeps the host as given
    )


def test_page_load_without_a_match_has_no_trace() -> None:
    body = {"trace": TRACE, "execute": {"pageLoad": {}}}
    result = run("TEST_ARTIFACT_PARAMS", request(body))
    assert not result.response.execute.page_load.HasField("trace")


def _unmatched(body: dict[str, object]) -> list[list[object]]:
    result = run("TEST_ARTIFACT_PARAMS", request(body))
    traces = [as_dict(m)["trace"] for m in result.response.prefetch.mboxes]
    return [t["evaluatedCampaignTargets"][0]["unmatchedRuleConditions"] for t in traces]


def test_a_blank_mbox_trace_sees_the_conditions_of_later_items_of_the_mode() -> None:
    """Node keeps the blank mbox's trace by reference: its rule conditions are the mode's final ones."""
    blank = {"name": "mbox-params", "index": 1, "parameters": {"foo": "no"}}
    (one,) = _unmatched({"trace": TRACE, "prefetch": {"mboxes": [blank]}})
    first, second = _unmatched({"trace": TRACE, "prefetch": {"mboxes": [blank, dict(blank, index=2)]}})
    assert one and first == second == one + one


def test_trace_output_is_capped() -> None:
    mboxes = [{"name": "mbox-params", "index": i, "parameters": {"foo": "no"}} for i in range(400)]
    body = {"trace": TRACE, "prefetch": {"mboxes": mboxes}}
    with pytest.raises(RequestValidationError, match=f"more than {TRACE_ENTRY_LIMIT} entries") as info:
        run("TEST_ARTIFACT_PARAMS", request(body))
    assert info.value.field == "request.trace"
    # the same request without trace is answered
    del body["trace"]
    assert len(run("TEST_ARTIFACT_PARAMS", request(body)).response.prefetch.mboxes) == 400
