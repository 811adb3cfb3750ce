"""Page/referring URL, user agent / client hints and geo context."""

from __future__ import annotations

import pytest

from targetd.v1 import delivery_pb2
from targetd_server.engine import geo_from_lookup, needs_geo_lookup
from targetd_server.engine.context import geo_context
from targetd_server.engine.urls import url_context
from targetd_server.engine.useragent import browser_context
from tests.engine.helpers import CHROME_MAC, FIREFOX_MAC, SAFARI_MAC, artifact, as_dict, request, run

URL_CASES = [
    (
        "http://local-target-test:8080/home?bar=true#hello",
        ("local-target-test", "", "", "/home", "bar=true", "hello"),
    ),
    ("https://www.target.com/a/b.html", ("target.com", "", "com", "/a/b.html", "", "")),
    (
        "https://www.shop.target.com:443/",
        ("target.com", "shop", "com", "/", "", ""),
    ),  # "www." is 4 characters
    ("https://wwwx.target.com/", ("target.com", "", "com", "/", "", "")),  # Node: substring(4)
    # psl calls a host with an unlisted last label invalid: the host as given, no TLD (Node)
    ("https://www.local-target-test/x", ("www.local-target-test", "", "", "/x", "", "")),
    ("http://Test.Local-Target-Test:8080/", ("Test.Local-Target-Test", "", "", "/", "", "")),
    ("https://co.uk/", ("co.uk", "", "", "/", "", "")),
    ("http://user:pw@a.b.example.co.uk/x?y#z", ("example.co.uk", "a.b", "co.uk", "/x", "y", "z")),
    (
        "https://test.wayne-enterprises.us-east-1.elasticbeanstalk.com",
        (
            "wayne-enterprises.us-east-1.elasticbeanstalk.com",
            "test",
            "us-east-1.elasticbeanstalk.com",
            "",
            "",
            "",
        ),
    ),
    ("http://127.0.0.1:8080/p", ("127.0.0.1", "", "", "/p", "", "")),
    ("http://printer.office.local/status", ("printer.office.local", "", "", "/status", "", "")),
    ("http://example.com./", ("example.com", "", "com", "/", "", "")),
    ("", ("", "", "", "", "", "")),
]


@pytest.mark.parametrize(("url", "expected"), URL_CASES)
def test_url_context(url: str, expected: tuple[str, ...]) -> None:
    """expected: domain, subdomain, topLevelDomain, path, query, fragment."""
    page = url_context(url)
    fields = ("domain", "subdomain", "topLevelDomain", "path", "query", "fragment")
    assert tuple(page[f] for f in fields) == expected
    assert page["url"] == url
    assert page["url_lc"] == url.lower()


def test_url_context_keeps_case_and_lowercases_twins() -> None:
    page = url_context("https://Shop.Example.COM/Path?Q=1")
    assert page["url"] == "https://Shop.Example.COM/Path?Q=1"
    assert page["path"] == "/Path" and page["query"] == "Q=1"
    # psl lower-cases the host it parses
    assert (page["domain"], page["subdomain"], page["topLevelDomain"]) == ("example.com", "shop", "com")
    assert page["domain_lc"] == "example.com"
    assert page["path_lc"] == "/path" and page["query_lc"] == "q=1"


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (CHROME_MAC, ("chrome", 80, "mac")),
        (FIREFOX_MAC, ("firefox", 73, "mac")),
        (SAFARI_MAC, ("safari", 13, "mac")),
        ("Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0) like Gecko", ("ie", 11, "windows")),
        ("Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.1; Trident/6.0)", ("ie", 10, "windows")),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/91.0.4472.124 Safari/537.36 Edg/91.0.864.59",
            ("edge", 91, "windows"),
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 13_2_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/13.0.3 Mobile/15E148 Safari/604.1",
            ("mobile safari", 13, "iOS"),
        ),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:90.0) Gecko/20100101 Firefox/90.0", ("firefox", 90, "linux")),
        ("curl/8.0", ("unknown", -1, "unknown")),
        ("", ("unknown", -1, "unknown")),
    ],
)
def test_user_agent(user_agent: str, expected: tuple[str, int, str]) -> None:
    assert browser_context(user_agent) == expected


def test_client_hints_come_first() -> None:
    brands = '" Not A;Brand";v="99.0.0.0", "Chromium";v="96.0.4664.45", "Google Chrome";v="96.0.4664.45"'
    assert browser_context(FIREFOX_MAC, "Windows", brands) == ("chrome", 96, "windows")
    assert browser_context("", "macOS", "", '"Microsoft Edge";v="99", "Chromium";v="99"') == (
        "edge",
        99,
        "mac",
    )
    # Node's hint patterns know Chrome, Edge, Safari and Firefox brands only; a present platform is used
    # as given (even empty), mapped only for Windows/macOS/Linux
    assert browser_context("", None, "", '"Chromium";v="101", "Not(A:Brand";v="8"') == (
        "unknown",
        -1,
        "unknown",
    )
    assert browser_context("", "", "", "") == ("unknown", -1, "")
    assert browser_context(CHROME_MAC, "Android") == ("chrome", 80, "Android")


@pytest.mark.parametrize(
    ("user_agent", "platform"),
    [
        (
            "Mozilla/5.0 (Linux; Android 10; SM-G973F) AppleWebKit/537.36 Chrome/86.0 Mobile Safari/537.36",
            "Android",
        ),
        ("Mozilla/5.0 (X11; CrOS x86_64 13421.89.0) AppleWebKit/537.36 Chrome/86.0 Safari/537.36", "Unix"),
        ("Mozilla/5.0 (Linux; U; en-US) AppleWebKit/528.5+", "unknown"),  # no " Linux " (Node)
    ],
)
def test_platform_names_as_node(user_agent: str, platform: str) -> None:
    assert browser_context(user_agent)[2] == platform


def test_client_hints_reach_the_rules() -> None:
    body = {
        "prefetch": {"mboxes": [{"name": "mbox-browsers", "index": 1}]},
        "context": {
            "channel": "web",
            "userAgent": FIREFOX_MAC,
            "clientHints": {"browserUAWithMajorVersion": '"Google Chrome";v="96", "Chromium";v="96"'},
        },
    }
    result = run("TEST_ARTIFACT_BROWSER", request(body))
    assert as_dict(result.response.prefetch.mboxes[0].options[0])["content"] == "<h1>it's chrome</h1>"


def test_geo_lookup_rule() -> None:
    geo_artifact = artifact("TEST_ARTIFACT_GEO")

    def with_geo(geo: dict[str, object]) -> delivery_pb2.DeliveryRequest:
        return request({"execute": {"mboxes": [{"name": "x"}]}, "context": {"channel": "web", "geo": geo}})

    assert needs_geo_lookup(geo_artifact, with_geo({"ipAddress": "127.0.0.1"}))
    assert needs_geo_lookup(geo_artifact, with_geo({"ipAddress": "2001:db8::1"}))
    assert needs_geo_lookup(geo_artifact, with_geo({"ipAddress": "unknownIpAddress"}))
    assert not needs_geo_lookup(geo_artifact, with_geo({"ipAddress": "not-an-ip"}))
    assert not needs_geo_lookup(geo_artifact, with_geo({}))
    assert not needs_geo_lookup(geo_artifact, with_geo({"ipAddress": "127.0.0.1", "city": "X"}))
    assert not needs_geo_lookup(artifact("TEST_ARTIFACT_BLANK"), with_geo({"ipAddress": "127.0.0.1"}))


def test_geo_lookup_result_is_merged_and_used() -> None:
    looked_up = geo_from_lookup(
        {
            "x-geo-latitude": "37.75",
            "X-Geo-Longitude": -122.4,
            "x-geo-city": "SAN FRANCISCO",
            "x-geo-region-code": "CA",
            "x-geo-country-code": "US",
            "x-geo-zip": "ignored",
        }
    )
    assert geo_context(looked_up) == {
        "country": "US",
        "region": "CA",
        "city": "SAN FRANCISCO",
        "latitude": 37.75,
        "longitude": -122.4,
    }
    body = {
        "execute": {"mboxes": [{"name": "mbox-geography", "index": 1}]},
        "context": {"channel": "web", "geo": {"ipAddress": "127.0.0.1"}},
    }
    result = run(
        "TEST_ARTIFACT_GEO",
        request(body, visitor={"thirdPartyId": "338e3c1e51f7416a8e1ccba4f81acea0.28_0"}),
        geo=looked_up,
    )
    assert as_dict(result.request.context.geo) == {
        "ipAddress": "127.0.0.1",
        "latitude": 37.75,
        "longitude": -122.4,
        "countryCode": "US",
        "stateCode": "CA",
        "city": "SAN FRANCISCO",
    }
    option = as_dict(result.response.execute.mboxes[0].options[0])
    assert option["content"] == {"geo": True, "exp": "geo.b"}
    assert option["responseTokens"]["geo.city"] == "SAN FRANCISCO"
    assert option["responseTokens"]["geo.state"] == "CA"
    assert "geo.latitude" not in option["responseTokens"]  # not listed in the artifact's responseTokens


def test_invalid_ip_is_dropped_from_validated_request() -> None:
    body = {
        "execute": {"mboxes": [{"name": "x"}]},
        "context": {"channel": "web", "geo": {"ipAddress": "bogus"}},
    }
    result = run("TEST_ARTIFACT_GEO", request(body))
    assert not result.request.context.geo.HasField("ip_address")
