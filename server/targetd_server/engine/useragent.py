"""User-agent and client-hints context (``user.browserType``, ``user.browserVersion``, ``user.platform``).

Node SDK semantics (target-tools ``browserFromUserAgent``, ``operatingSystemFromUserAgent``,
``browserFromClientHintsUA``, and the engine's ``toTargetPlatform``), proven by the differential test:

* browser: the first of Edge, Mobile Safari, Safari, Chrome, Firefox (only at the end of the agent), IE
  (``MSIE`` or ``Trident … rv:N … like Gecko``) that matches, case-insensitively; the lower-cased name and
  the integer part of the matched version (``unknown`` / -1 when nothing matches). Client hints
  (``browserUAWithFullVersion``, else ``browserUAWithMajorVersion``: ``Chrome";v="…"``, ``Edge``, ``Safari``,
  ``Firefox``) override the name when they name a browser and the version when they carry one.
* platform: ``clientHints.platform`` whenever it is present (even empty), else the first of iOS
  (``iPhone|iPad|iPod``), Android (``Android <version>;``), Linux (`` Linux ``), Unix
  (``FreeBSD|OpenBSD|CrOS``), Windows (``(Windows `` or `` Windows ``), Mac OS (``Macintosh;``), matched
  case-sensitively, else ``unknown``; then ``Windows``→``windows``,
  ``Macintosh``/``Mac OS``/``macOS``→``mac``, ``Linux``→``linux``, any other value unchanged
  (``Android``, ``iOS``, ``Unix``, ``Chrome OS`` …).

``ua-parser`` is deliberately not used: its families differ from what the artifacts target, and a handful of
regexes is both faithful and far cheaper. Results are cached per input in a bounded LRU cache (2048).
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["browser_context"]

# (name, pattern, version group)
_BROWSERS: tuple[tuple[str, re.Pattern[str], int], ...] = (
    ("edge", re.compile(r"(edge|edgios|edga|edg)/((\d+)?[\w.]+)", re.IGNORECASE), 2),
    ("mobile safari", re.compile(r"version/([\w.]+).+?mobile/\w+\s(safari)", re.IGNORECASE), 1),
    ("safari", re.compile(r"version/([\w.]+).+?(mobile\s?safari|safari)", re.IGNORECASE), 1),
    ("chrome", re.compile(r"(chrome)/v?([\w.]+)", re.IGNORECASE), 2),
    ("firefox", re.compile(r"(firefox)/([\w.-]+)$", re.IGNORECASE), 2),
    ("ie", re.compile(r"(?:ms|\()(ie)\s([\w.]+)", re.IGNORECASE), 2),
    ("ie", re.compile(r"(trident).+rv[:\s]([\w.]+).+like\sgecko", re.IGNORECASE), 2),
)

_HINT_BROWSERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("chrome", re.compile(r'Chrome";v="([0-9.]+)"', re.IGNORECASE)),
    ("edge", re.compile(r'Edge";v="([0-9.]+)"', re.IGNORECASE)),
    ("safari", re.compile(r'Safari";v="([0-9.]+)"', re.IGNORECASE)),
    ("firefox", re.compile(r'Firefox";v="([0-9.]+)"', re.IGNORECASE)),
)

_PLATFORMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"iPhone|iPad|iPod"), "iOS"),
    (re.compile(r"Android [0-9.]+;"), "Android"),
    (re.compile(r" Linux "), "Linux"),
    (re.compile(r"FreeBSD|OpenBSD|CrOS"), "Unix"),
    (re.compile(r"[( ]Windows "), "Windows"),
    (re.compile(r"Macintosh;"), "Mac OS"),
)

_TARGET_PLATFORMS = {
    "Windows": "windows",
    "Macintosh": "mac",
    "Mac OS": "mac",
    "macOS": "mac",
    "Linux": "linux",
}
_LEADING_INT = re.compile(r"\s*([+-]?\d+)")


def _major(version: str | None) -> int:
    """JavaScript's ``parseInt(version.split(".")[0], 10)`` for the versions the patterns capture
    (-1 when there is none; a version with no leading digits, which parseInt makes NaN, also -1)."""
    match = _LEADING_INT.match((version or "-1").split(".")[0])
    return int(match.group(1)) if match else -1


def _browser_from_ua(user_agent: str) -> tuple[str, int]:
    for name, pattern, group in _BROWSERS:
        match = pattern.search(user_agent)
        if match is not None:
            return name, _major(match.group(group))
    return "unknown", -1


def _browser_from_hints(brands: str) -> tuple[str, int]:
    for name, pattern in _HINT_BROWSERS:
        match = pattern.search(brands)
        if match is not None:
            return name, _major(match.group(1))
    return "unknown", -1


@lru_cache(maxsize=2048)
def browser_context(
    user_agent: str,
    hint_platform: str | None = None,
    hint_full_version: str = "",
    hint_major_version: str = "",
) -> tuple[str, int, str]:
    """``(browserType, browserVersion, platform)`` for a user agent and optional client hints
    (``hint_platform`` None: the request has no ``clientHints.platform``)."""
    name, version = _browser_from_ua(user_agent)
    hint_name, hint_version = _browser_from_hints(hint_full_version or hint_major_version)
    if hint_name != "unknown":
        name = hint_name
    if hint_version >= 0:
        version = hint_version
    if hint_platform is not None:
        platform = hint_platform
    else:
        platform = "unknown"
        for pattern, found in _PLATFORMS:
            if pattern.search(user_agent):
                platform = found
                break
    return name, version, _TARGET_PLATFORMS.get(platform, platform)
