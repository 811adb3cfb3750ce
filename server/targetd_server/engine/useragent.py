"""User-agent and client-hints context (``user.browserType``, ``user.browserVersion``, ``user.platform``).

Approach (Node SDK semantics, not the Python SDK's ``ua-parser`` families): an ordered list of browser
patterns, first match wins — Edge, Mobile Safari, Safari, Chrome, Firefox, IE (``MSIE`` or
``Trident ... rv:11``) — giving the lower-cased name and the integer major version (``unknown`` / -1 when
nothing matches). ``ua-parser`` is deliberately not used on this path: its families differ from what the
artifacts target (``Chrome Mobile``, ``Mobile Safari UI/WKWebView``, ``Edge``/``Edg`` naming changes), and a
handful of anchored regexes is both faithful and ~100x cheaper than an uncached resolver call.

Client hints come first when present (Node prefers them): ``clientHints.platform`` gives the platform, and
``browserUAWithFullVersion`` / ``browserUAWithMajorVersion`` (a ``Sec-CH-UA`` brand list) give the browser —
the first real brand (GREASE entries such as ``"Not A;Brand"`` skipped, ``Chromium`` only as a fallback),
mapped ``Google Chrome``→chrome, ``Microsoft Edge``→edge, ``Chromium``→chrome, else the brand lower-cased.
Platforms are ``windows``, ``mac``, ``linux``, ``iOS``, ``android`` or ``unknown``. Results are cached
per input in a bounded LRU cache.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["browser_context"]

_BROWSERS: tuple[tuple[str, re.Pattern[str], int, int | None], ...] = (
    ("edge", re.compile(r"(edge|edgios|edga|edg)/((\d+)?[\w.]+)", re.IGNORECASE), 2, None),
    ("mobile safari", re.compile(r"version/([\w.]+).+?mobile/\w+\s(safari)", re.IGNORECASE), 1, None),
    ("safari", re.compile(r"version/([\w.]+).+?(mobile\s?safari|safari)", re.IGNORECASE), 1, None),
    ("chrome", re.compile(r"(chrome|crios)/v?([\w.]+)", re.IGNORECASE), 2, None),
    ("firefox", re.compile(r"(firefox|fxios)/([\w.-]+)", re.IGNORECASE), 2, None),
    ("ie", re.compile(r"(?:ms|\()(ie)\s([\w.]+)", re.IGNORECASE), 2, None),
    ("ie", re.compile(r"(trident).+rv[:\s]([\w.]+).+like\sgecko", re.IGNORECASE), 2, 11),
)

_PLATFORMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"windows", re.IGNORECASE), "windows"),
    (re.compile(r"iphone|ipad|ipod", re.IGNORECASE), "iOS"),
    (re.compile(r"android", re.IGNORECASE), "android"),
    (re.compile(r"macintosh|mac os|macos", re.IGNORECASE), "mac"),
    (re.compile(r"linux|x11|cros", re.IGNORECASE), "linux"),
)

_HINT_PLATFORMS = {
    "windows": "windows",
    "macos": "mac",
    "mac os": "mac",
    "mac os x": "mac",
    "macintosh": "mac",
    "linux": "linux",
    "chrome os": "linux",
    "chromeos": "linux",
    "android": "android",
    "ios": "iOS",
}

_BRANDS = {"google chrome": "chrome", "microsoft edge": "edge", "chromium": "chrome"}
_BRAND_RE = re.compile(r'\s*"?([^";]*)"?\s*;\s*v\s*=\s*"?([^",]*)"?\s*')
_MAJOR_RE = re.compile(r"^\s*(\d+)")


def _major(version: str) -> int:
    match = _MAJOR_RE.match(version or "")
    return int(match.group(1)) if match else -1


def _browser_from_ua(user_agent: str) -> tuple[str, int]:
    for name, pattern, group, fixed in _BROWSERS:
        match = pattern.search(user_agent)
        if match is not None:
            return name, fixed if fixed is not None else _major(match.group(group))
    return "unknown", -1


def _browser_from_hints(brands: str) -> tuple[str, int] | None:
    fallback: tuple[str, int] | None = None
    for part in brands.split(","):
        match = _BRAND_RE.match(part)
        if match is None:
            continue
        brand = match.group(1).strip()
        lowered = brand.lower()
        if not brand or ("not" in lowered and "brand" in lowered):
            continue
        result = (_BRANDS.get(lowered, lowered), _major(match.group(2)))
        if lowered == "chromium":
            fallback = fallback or result
            continue
        return result
    return fallback


def _platform_from_ua(user_agent: str) -> str:
    for pattern, name in _PLATFORMS:
        if pattern.search(user_agent):
            return name
    return "unknown"


@lru_cache(maxsize=2048)
def browser_context(
    user_agent: str, hint_platform: str = "", hint_full_version: str = "", hint_major_version: str = ""
) -> tuple[str, int, str]:
    """``(browserType, browserVersion, platform)`` for a user agent and optional client hints."""
    browser: tuple[str, int] | None = None
    if hint_full_version:
        browser = _browser_from_hints(hint_full_version)
    if browser is None and hint_major_version:
        browser = _browser_from_hints(hint_major_version)
    if browser is None:
        browser = _browser_from_ua(user_agent)
    if hint_platform:
        platform = _HINT_PLATFORMS.get(hint_platform.strip().lower(), hint_platform.strip())
    else:
        platform = _platform_from_ua(user_agent)
    return browser[0], browser[1], platform
