"""Randomised requests against the full sample artifact: the engine decides every one of them (the SDK
bugs 0.5(d) and (k) were found this way) and keeps its invariants."""

from __future__ import annotations

import random
from typing import Any

from targetd_server.engine import decide
from tests.engine.helpers import CHROME_MAC, FIREFOX_MAC, SAFARI_MAC, artifact, request

URLS = [
    "http://local-target-test/",
    "https://www.shop.example.co.uk:8443/a/b?q=1#f",
    "not a url",
    "http://[::1]:80/x",
    "http://[bad/",
    "",
    "https://ünïcode.example/ß?x=%zz",
]
AGENTS = [
    CHROME_MAC,
    FIREFOX_MAC,
    SAFARI_MAC,
    "",
    "\x00weird",
    "Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0) like Gecko",
]
KEYS = ["a", "a.b", "a.b.c", "foo", "foo_lc", ".x", "x.", "y..z", "jason", "greg", "user", "favorite.color"]
VALUES = ["Red", "", "42", "correct", "bar", "ÄÖ", "1e3"]


def _params(rng: random.Random) -> dict[str, str]:
    return {rng.choice(KEYS): rng.choice(VALUES) for _ in range(rng.randint(0, 5))}


def _random_body(rng: random.Random, mboxes: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    items = [
        {"name": rng.choice(mboxes), "index": i, "parameters": _params(rng)} for i in range(rng.randint(0, 4))
    ]
    if rng.random() < 0.5:
        body["execute"] = {"mboxes": items} if items else {"pageLoad": {"parameters": _params(rng)}}
        if rng.random() < 0.3:
            body["execute"]["pageLoad"] = {"parameters": _params(rng)}
    else:
        views = [
            {"name": rng.choice(["home", "contact", "nope"])} if rng.random() < 0.5 else {} for _ in range(2)
        ]
        body["prefetch"] = {"mboxes": items, "views": views}
        if rng.random() < 0.3:
            body["prefetch"]["pageLoad"] = {"address": {"url": rng.choice(URLS)}}
    if rng.random() < 0.2:
        body["trace"] = {}
    if rng.random() < 0.3:
        body["property"] = {"token": rng.choice(["x", "f12c912a-792f-6c01-4977-65d39558c82e"])}
    return body


def test_random_requests_always_decide() -> None:
    compiled = artifact("artifact")
    mboxes = [*sorted(compiled.mbox_rules), "not-local"]
    rng = random.Random(20261123)
    for _ in range(300):
        body = _random_body(rng, mboxes)
        geo = {"city": "SAN FRANCISCO", "latitude": rng.uniform(-90, 90)} if rng.random() < 0.5 else {}
        visitor = rng.choice(
            [{}, {"tntId": "abc.28_0"}, {"thirdPartyId": "t"}, {"marketingCloudVisitorId": "m"}]
        )
        req = request(body, user_agent=rng.choice(AGENTS), url=rng.choice(URLS), visitor=visitor)
        req.context.geo.MergeFrom(request({"context": {"geo": geo}}).context.geo)
        before = req.SerializeToString(deterministic=True)
        result = decide(compiled, req, client="targettesting", location_hint="28")
        assert req.SerializeToString(deterministic=True) == before  # the caller's request is never modified
        assert result.response.status in (200, 206)
        assert (result.response.status == 206) == result.has_remote_dependency
        assert result.request.id.ListFields()  # some visitor id is always there
        requested = len(req.execute.mboxes) if req.HasField("execute") else 0
        non_global = [m for m in req.execute.mboxes if m.name != compiled.global_mbox] if requested else []
        assert len(result.response.execute.mboxes) >= len(non_global)
        if not req.HasField("execute"):
            assert result.notifications == []
