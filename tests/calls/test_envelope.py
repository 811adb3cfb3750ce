"""Cookies, the TargetDeliveryResponse envelope and get_attributes flattening."""

from __future__ import annotations

import pytest

from targetd.json_format import message_to_dict, parse_dict
from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from targetd_server.calls import CallOptions, RequestIdentity
from targetd_server.calls.cookies import (
    cluster_from_device_id,
    cluster_from_edge_host,
    create_location_hint_cookie,
    create_target_cookie,
    parse_target_cookie,
)
from targetd_server.calls.envelope import add_mboxes_to_request, build_envelope, fill_attributes
from targetd_server.calls.on_device import decide_on_device
from targetd_server.config import Settings
from tests.engine.helpers import CLIENT, artifact, counter_ids, request, run, visitor_in

NOW_MS = 1_600_000_000_500  # a half second: Node rounds "now" up to whole seconds
NOW_S = 1_600_000_001


def test_parse_target_cookie() -> None:
    value = (
        f"session#abc%20def#{NOW_S + 1860}|PC#338e.28_0#{NOW_S + 63244800}"
        f"|old#x#{NOW_S - 1}|broken#nope|bad#x#soon|edge#v#{NOW_S}"
    )
    cookies = parse_target_cookie(value, now_ms=NOW_MS)
    assert cookies.session_id == "abc def"
    assert cookies.device_id == "338e.28_0"
    assert cookies.cluster == "28"
    assert set(cookies.parts) == {"session", "PC", "edge"}  # expired, short and non-numeric parts dropped
    assert parse_target_cookie(None).session_id is None
    assert parse_target_cookie("").parts == {}


@pytest.mark.parametrize(
    ("device_id", "cluster"),
    [("abc.35_0", "35"), ("abc", None), ("abc.35", None), ("a.b.35_0", None), ("abc._0", None), (None, None)],
)
def test_cluster_from_device_id(device_id: str | None, cluster: str | None) -> None:
    assert cluster_from_device_id(device_id) == cluster


def test_cluster_from_edge_host() -> None:
    assert cluster_from_edge_host("mboxedge28.tt.omtrdc.net") == "28"
    assert cluster_from_edge_host("someclient.tt.omtrdc.net") is None
    assert cluster_from_edge_host("mboxedge28.tt.omtrdc.net.evil") is None
    assert cluster_from_edge_host(None) is None


def test_create_target_cookie() -> None:
    cookie = create_target_cookie("sess ion/1", "338e.28_0", now_ms=NOW_MS)
    assert cookie is not None
    assert cookie.name == "mbox"
    # encodeURIComponent: space → %20 and "/" → %2F (Python's quote would keep "/").
    assert cookie.value == f"session#sess%20ion%2F1#{NOW_S + 1860}|PC#338e.28_0#{NOW_S + 63244800}"
    # ceil(|max(expires) * 1000 - now_ms| / 1000): the half second rounds up.
    assert cookie.max_age == 63244801
    only_session = create_target_cookie("s", None, now_ms=1_600_000_000_000)
    assert only_session is not None and only_session.max_age == 1860
    assert only_session.value == "session#s#1600001860"
    assert create_target_cookie(None, None, now_ms=NOW_MS) is None


@pytest.mark.parametrize(
    "value",
    ["".join(map(chr, range(32, 127))), "abc-DEF_0.9!~*'()", "é ü", "x|y#z", "a\n", "0\u2028", "%41"],
)
def test_cookie_values_are_escaped_as_encode_uri_component(value: str) -> None:
    # the values that need no escaping are passed through unchanged; every other is quote()'d
    safe = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()")
    expected = "".join(c if c in safe else "".join(f"%{b:02X}" for b in c.encode()) for c in value)
    cookie = create_target_cookie(value, None, now_ms=NOW_MS)
    assert cookie is not None
    assert cookie.value == f"session#{expected}#{NOW_S + 1860}"


def test_cookie_round_trip() -> None:
    cookie = create_target_cookie("a|b#c", "t.9_0", now_ms=NOW_MS)
    assert cookie is not None
    parsed = parse_target_cookie(cookie.value, now_ms=NOW_MS)
    assert (parsed.session_id, parsed.device_id, parsed.cluster) == ("a|b#c", "t.9_0", "9")


def test_location_hint_cookie() -> None:
    cookie = create_location_hint_cookie("28", "mboxedge31.tt.omtrdc.net")
    assert cookie is not None
    assert (cookie.name, cookie.value, cookie.max_age) == ("mboxEdgeCluster", "28", 1860)
    from_edge = create_location_hint_cookie(None, "mboxedge31.tt.omtrdc.net")
    assert from_edge is not None and from_edge.value == "31"
    assert create_location_hint_cookie(None, None) is None


def test_envelope_collects_in_sdk_order() -> None:
    response = parse_dict(
        {
            "status": 200,
            "execute": {
                "pageLoad": {
                    "options": [{"type": "html", "content": "p", "responseTokens": {"t": "epl"}}],
                    "analytics": {"payload": {"tnta": "epl"}},
                    "trace": {"n": "epl"},
                },
                "mboxes": [
                    {
                        "name": "m1",
                        "options": [{"responseTokens": {"t": "em1a"}}, {"responseTokens": {"t": "em1b"}}],
                        "analytics": {"payload": {"tnta": "em1"}},
                        "trace": {"n": "em1"},
                    }
                ],
            },
            "prefetch": {
                "pageLoad": {"options": [{"responseTokens": {"t": "ppl"}}], "trace": {"n": "ppl"}},
                "views": [
                    {
                        "name": "v",
                        "options": [{"responseTokens": {"t": "pv"}}],
                        "analytics": {"payload": {"tnta": "pv"}},
                    }
                ],
                "mboxes": [
                    {"name": "m2", "options": [{"type": "json", "content": {}}], "trace": {"n": "pm2"}}
                ],
            },
        },
        delivery_pb2.DeliveryResponse(),
    )
    req = request({"execute": {"mboxes": [{"name": "m1"}]}})
    envelope = build_envelope(
        response=response,
        request=req,
        identity=RequestIdentity("s", None, "28"),
        decisioning_method=delivery_pb2.DECISIONING_METHOD_ON_DEVICE,
        remote_mboxes=["r1"],
        now_ms=NOW_MS,
    )
    data = message_to_dict(envelope)
    assert [d["payload"]["tnta"] for d in data["analyticsDetails"]] == ["epl", "em1", "pv"]
    assert [t["n"] for t in data["trace"]] == ["epl", "em1", "ppl", "pm2"]
    assert [t["t"] for t in data["responseTokens"]] == ["epl", "em1a", "em1b", "ppl", "pv"]
    assert data["meta"] == {"decisioningMethod": "on-device", "remoteMboxes": ["r1"]}
    assert data["targetCookie"]["name"] == "mbox" and data["targetLocationHintCookie"]["value"] == "28"
    assert envelope.response == response and envelope.request == req


def test_envelope_from_a_real_decision() -> None:
    body = {"execute": {"mboxes": [{"name": "mbox-magician", "index": 1}]}}
    result = run("TEST_ARTIFACT_AB_SIMPLE", request(body))
    envelope = build_envelope(
        response=result.response,
        request=result.request,
        identity=RequestIdentity("s", None, None),
        decisioning_method=delivery_pb2.DECISIONING_METHOD_ON_DEVICE,
    )
    (tokens,) = message_to_dict(envelope)["responseTokens"]
    assert tokens["activity.decisioningMethod"] == "on-device"
    assert tokens["activity.id"] == 125873


def test_add_mboxes_to_request() -> None:
    original = request(
        {"execute": {"mboxes": [{"name": "a", "index": 4}]}, "prefetch": {"mboxes": [{"name": "b"}]}}
    )
    result = add_mboxes_to_request(["a", "b", "c", "d", "c"], original)
    assert [(m.name, m.index) for m in result.execute.mboxes] == [("a", 4), ("c", 5), ("d", 6)]
    assert len(original.execute.mboxes) == 1
    fresh = add_mboxes_to_request(["x"], None)
    assert [(m.name, m.index) for m in fresh.execute.mboxes] == [("x", 1)]


def test_attributes_flattening_later_keys_win() -> None:
    response = parse_dict(
        {
            "prefetch": {
                "mboxes": [{"name": "m", "options": [{"type": "json", "content": {"a": 1, "b": "pre"}}]}]
            },
            "execute": {
                "mboxes": [
                    {
                        "name": "m",
                        "options": [
                            {"type": "json", "content": {"b": "exec", "c": True}},
                            {"type": "html", "content": "<p>ignored</p>"},
                        ],
                    },
                    {"name": "empty"},
                ]
            },
        },
        delivery_pb2.DeliveryResponse(),
    )
    out = pb.GetAttributesResponse()
    fill_attributes(out.attributes, response)
    data = message_to_dict(out)["attributes"]
    assert data == {"m": {"a": 1, "b": "exec", "c": True}, "empty": {}}
    assert out.attributes["m"].fields["b"].string_value == "exec"


def test_attributes_of_an_on_device_feature_flag() -> None:
    visitor = visitor_in(125885, 0, 50)
    req = add_mboxes_to_request(["mbox-feature-flags"], request({}, visitor={"tntId": visitor}))
    result = run("TEST_ARTIFACT_FEATURE_FLAG", req)
    out = pb.GetAttributesResponse()
    fill_attributes(out.attributes, result.response)
    assert message_to_dict(out)["attributes"]["mbox-feature-flags"] == {
        "paymentExperience": "legacy",
        "showFeatureX": False,
        "paymentGatewayVersion": 2.3,
        "customerFeedbackValue": 10,
    }


def _options(cookie: str | None, **fields: object) -> CallOptions:
    call = pb.GetOffersRequest(**fields)  # type: ignore[arg-type]
    if cookie is not None:
        call.target_cookie = cookie
    return CallOptions.of(call, now_ms=NOW_MS)


def test_identity_priorities() -> None:
    cookie = f"session#from-cookie#{NOW_S + 100}|PC#dev.35_0#{NOW_S + 100}"
    identity = _options(cookie, session_id="opt", target_location_hint="28").identity("9", ids=lambda: "new")
    assert (identity.session_id, identity.device_id, identity.cluster) == ("from-cookie", "dev.35_0", "35")
    identity = _options(None, session_id="opt", target_location_hint="28").identity("9", ids=lambda: "new")
    assert (identity.session_id, identity.device_id, identity.cluster) == ("opt", None, "28")
    identity = _options(None, session_id="opt").identity("9", ids=lambda: "new")
    assert identity.cluster == "9"  # the client's hint when the call has none
    identity = _options("").identity(None, ids=lambda: "new")
    assert (identity.session_id, identity.cluster) == ("new", None)


def test_call_options_read_once() -> None:
    options = _options(
        None,
        consumer_id="c2",
        customer_ids=[delivery_pb2.CustomerId(id="1", integration_code="crm")],
        decisioning_method=delivery_pb2.DECISIONING_METHOD_HYBRID,
    )
    assert options.consumer_id == "c2"
    assert [c.id for c in options.customer_ids] == ["1"]
    assert options.decisioning_method == delivery_pb2.DECISIONING_METHOD_HYBRID
    assert _options(None).consumer_id == "target-global-mbox"
    notes = CallOptions.of(pb.SendNotificationsRequest(session_id="s"))
    assert notes.session_id == "s"
    assert notes.decisioning_method == delivery_pb2.DECISIONING_METHOD_UNSPECIFIED


def test_on_device_envelope_end_to_end() -> None:
    cookie = f"PC#cookie-visitor.35_0#{NOW_S + 100}"
    options = _options(cookie, target_location_hint="28")
    req = request({"execute": {"mboxes": [{"name": "mbox-magician", "index": 1}]}}, visitor={})
    outcome = decide_on_device(
        req,
        options,
        artifact("TEST_ARTIFACT_AB_SIMPLE"),
        settings=Settings(client=CLIENT, organization_id="org@AdobeOrg"),
        clock=lambda: NOW_MS,
        ids=counter_ids(),
    )
    envelope = outcome.envelope
    assert req.id.tnt_id == "cookie-visitor.35_0"  # from the PC cookie
    assert envelope.target_cookie.value == (
        f"session#id-1#{NOW_S + 1860}|PC#cookie-visitor.35_0#{NOW_S + 63244800}"
    )
    assert envelope.target_location_hint_cookie.value == "35"
    assert message_to_dict(envelope.meta) == {"decisioningMethod": "on-device"}
    assert envelope.response.id.tnt_id == "cookie-visitor.35_0"
