"""Seeded random Delivery requests drawn from one rules artifact, for the differential test.

:func:`generate` returns ``count`` cases (``{"request": <Delivery API JSON>, "sessionId": str}``) that are
the same for the same ``(artifact, seed)``. What a request holds is drawn from the artifact: its mbox and
view names (and a few unknown ones), parameters named by the rules' ``mbox.*`` conditions with the
literals they compare against (strings, and numbers/booleans as Node callers send them), page URLs built
from the ``page.*`` literals, user agents and client hints, geo from the ``geo.*`` literals, the rules'
property tokens; execute and prefetch of mboxes, pageLoad and views; trace on (with an authorization
token, as Node needs to keep it) and, rarely, ``trace: {}`` without one (Node drops it).

Every case has a visitor id (tntId, marketingCloudVisitorId or thirdPartyId): without one, each side makes
up a random tntId and the allocation would differ by chance (that path is the conformance suite's).
Every case carries a distinct ``context.window.width`` (its position): decisions never read it, and it
ties each notification request back to the case that caused it on either side.
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["generate"]

USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/86.0.4240.75 "
    "Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:81.0) Gecko/20100101 Firefox/81.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.0 "
    "Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/86.0.4240.75 "
    "Safari/537.36 Edg/86.0.622.38",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
    "Mozilla/5.0 (Linux; Android 10; SM-G973F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/86.0.4240.99 "
    "Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 14_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/14.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/85.0.4183.121 "
    "Safari/537.36 OPR/71.0.3770.284",
    "curl/7.68.0",
)
CLIENT_HINTS = (
    {
        "mobile": False,
        "platform": "Windows",
        "browserUAWithMajorVersion": '"Chromium";v="104", "Google Chrome";v="104"',
    },
    {"mobile": True, "platform": "Android", "model": "Pixel 5", "platformVersion": "12"},
    {"mobile": False, "platform": "macOS", "browserUAWithFullVersion": '"Google Chrome";v="104.0.5112.79"'},
)
HOSTS = (
    "local-target-test",
    "www.local-target-test",
    "test.local-target-test:8080",
    "WWW.Example.COM",
    "shop.example.co.uk",
    "adobe.com",
    "target.adobe.com",
    "127.0.0.1:3000",
)
PATHS = ("/", "/about", "/products/shoes", "/search", "/checkout/cart")
QUERIES = ("", "?foo=bar", "?q=shoes&page=2", "?utm_source=email")
CITIES = ("SAN FRANCISCO", "BUCHAREST", "SAN JOSE", "NEW YORK")
COUNTRIES = ("US", "RO", "CA", "GB")
STATES = ("CA", "NY", "B", "ON")


def _walk(node: Any, found: dict[str, set[Any]], tokens: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "propertyTokens" and isinstance(value, list):
                tokens.update(v for v in value if isinstance(v, str))
            elif isinstance(value, list) and len(value) == 2:
                variables = [v["var"] for v in value if isinstance(v, dict) and isinstance(v.get("var"), str)]
                literals = [v for v in value if isinstance(v, str | int | float | bool)]
                for variable in variables:
                    found.setdefault(variable, set()).update(literals)
            _walk(value, found, tokens)
    elif isinstance(node, list):
        for item in node:
            _walk(item, found, tokens)


def _pick(rng: random.Random, values: Any) -> Any:
    values = sorted(values, key=repr)
    return values[rng.randrange(len(values))]


class _Drawer:
    def __init__(self, artifact: dict[str, Any], rng: random.Random) -> None:
        self.rng = rng
        rules = artifact.get("rules") or {}
        self.mboxes = [*sorted((rules.get("mboxes") or {}).keys()), "unknown-mbox"]
        self.views = [*sorted((rules.get("views") or {}).keys()), "unknown-view"]
        self.vars: dict[str, set[Any]] = {}
        self.tokens: set[str] = set()
        _walk(rules, self.vars, self.tokens)
        self.params = {k[5:]: v for k, v in self.vars.items() if k.startswith("mbox.") and "_" not in k[5:]}
        for key, values in list(self.vars.items()):
            if key.startswith("mbox.") and key.endswith(("_lc", "_lowercase")):
                self.params.setdefault(key[5:].rsplit("_", 1)[0], set()).update(values)
        self.page_literals = [
            v for k, v in self.vars.items() if k.startswith(("page.", "referring.")) for v in v
        ]

    def value(self, values: set[Any]) -> Any:
        rng = self.rng
        if values and rng.random() < 0.75:
            value = _pick(rng, values)
            if isinstance(value, str) and rng.random() < 0.15:
                value = value.upper()
            if isinstance(value, int | float) and not isinstance(value, bool) and rng.random() < 0.5:
                return str(value)
            return value
        return rng.choice(("x", "bar", "10", "true", ""))

    def parameters(self) -> dict[str, Any] | None:
        rng = self.rng
        if not self.params or rng.random() < 0.3:
            return None
        names = sorted(self.params)
        chosen = rng.sample(names, min(len(names), rng.randint(1, 3)))
        return {name: self.value(self.params[name]) for name in chosen}

    def url(self) -> str:
        rng = self.rng
        if self.page_literals and rng.random() < 0.5:
            literal = str(_pick(rng, self.page_literals))
            if literal.startswith("http"):
                return literal
            if "." in literal and "/" not in literal:
                return f"https://{literal}{rng.choice(PATHS)}{rng.choice(QUERIES)}"
            if literal.startswith("/"):
                return f"https://{rng.choice(HOSTS)}{literal}"
            return f"https://{rng.choice(HOSTS)}{rng.choice(PATHS)}?{literal}"
        return (
            f"{rng.choice(('https', 'http'))}://{rng.choice(HOSTS)}{rng.choice(PATHS)}{rng.choice(QUERIES)}"
        )

    def details(self, *, name: str | None = None, index: int | None = None) -> dict[str, Any]:
        rng = self.rng
        item: dict[str, Any] = {}
        if name is not None:
            item["name"] = name
        if index is not None:
            item["index"] = index
        params = self.parameters()
        if params:
            item["parameters"] = params
        if rng.random() < 0.15:
            item["address"] = {"url": self.url()}
        if rng.random() < 0.1:
            item["profileParameters"] = {"favorite": rng.choice(("red", "blue", 3, True))}
        return item

    def mbox_list(self, mode: str) -> list[dict[str, Any]]:
        rng = self.rng
        count = rng.choice((0, 1, 1, 1, 2, 3))
        names = [rng.choice(self.mboxes) for _ in range(count)]
        items = []
        for position, name in enumerate(names):
            index = position + 1 if rng.random() < 0.8 else None
            items.append(self.details(name=name, index=index))
        return items

    def mode(self, mode: str) -> dict[str, Any] | None:
        rng = self.rng
        if rng.random() < 0.35:
            return None
        out: dict[str, Any] = {}
        mboxes = self.mbox_list(mode)
        if mboxes:
            out["mboxes"] = mboxes
        if rng.random() < 0.3:
            out["pageLoad"] = self.details()
        if mode == "prefetch" and rng.random() < 0.35:
            views = []
            for _ in range(rng.randint(1, 2)):
                views.append(
                    self.details(name=rng.choice(self.views)) if rng.random() < 0.7 else self.details()
                )
            out["views"] = views
        return out or None

    def geo(self) -> dict[str, Any] | None:
        rng = self.rng
        if rng.random() < 0.6:
            return None
        geo: dict[str, Any] = {}
        lits = {k[4:]: v for k, v in self.vars.items() if k.startswith("geo.")}

        def draw(key: str, fallback: tuple[Any, ...]) -> Any:
            values = lits.get(key)
            return _pick(rng, values) if values and rng.random() < 0.7 else rng.choice(fallback)

        if rng.random() < 0.8:
            geo["city"] = str(draw("city", CITIES)).upper()
        if rng.random() < 0.8:
            geo["countryCode"] = str(draw("country", COUNTRIES)).upper()
        if rng.random() < 0.6:
            geo["stateCode"] = str(draw("region", STATES)).upper()
        if rng.random() < 0.5:
            geo["latitude"] = rng.choice((37.75, 44.43, 40.71))
            geo["longitude"] = rng.choice((-122.4, 26.1, -74.0))
        return geo or None

    def request(self, position: int) -> dict[str, Any]:
        rng = self.rng
        context: dict[str, Any] = {"channel": "web", "window": {"width": position}}
        if rng.random() < 0.9:
            context["address"] = {"url": self.url()}
            if rng.random() < 0.3:
                context["address"]["referringUrl"] = self.url()
        if rng.random() < 0.85:
            context["userAgent"] = rng.choice(USER_AGENTS)
        if rng.random() < 0.2:
            context["clientHints"] = dict(rng.choice(CLIENT_HINTS))
        geo = self.geo()
        if geo:
            context["geo"] = geo
        if rng.random() < 0.5:
            context["timeOffsetInMinutes"] = rng.choice((0, -300, 120, 330))
        request: dict[str, Any] = {"context": context}
        roll = rng.random()
        if roll < 0.55:
            request["id"] = {"tntId": f"{rng.getrandbits(64):016x}" + rng.choice(("", ".28_0", ".35_0"))}
        elif roll < 0.85:
            request["id"] = {"marketingCloudVisitorId": f"{rng.getrandbits(64):020d}"}
        else:
            request["id"] = {"thirdPartyId": f"crm-{rng.getrandbits(32)}"}
        if self.tokens and rng.random() < 0.4:
            request["property"] = {"token": _pick(rng, self.tokens)}
        roll = rng.random()
        if roll < 0.3:
            request["trace"] = {"authorizationToken": "differential-token"}
        elif roll < 0.35:
            request["trace"] = {}
        for mode in ("execute", "prefetch"):
            part = self.mode(mode)
            if part:
                request[mode] = part
        if "execute" not in request and "prefetch" not in request:
            request["execute"] = {"mboxes": [self.details(name=rng.choice(self.mboxes), index=1)]}
        return request


def generate(artifact: dict[str, Any], count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` seeded random cases for ``artifact`` (see the module docstring)."""
    rng = random.Random(seed)
    drawer = _Drawer(artifact, rng)
    return [
        {"request": drawer.request(position), "sessionId": f"session-{seed}-{position % 7}"}
        for position in range(count)
    ]
