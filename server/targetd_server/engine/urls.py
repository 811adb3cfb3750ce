"""Page and referring URL context (Node SDK semantics), with the maintained public-suffix list.

Node splits a URL with ``parse-uri`` (loose mode) and the host with ``psl``; this module does the same
with the same regular expression and ``publicsuffixlist`` (ICANN and private suffixes):

* ``domain`` is the registrable domain (``hooli.com``, lower-cased as psl does), or the whole host *as
  given* when psl calls it invalid (a single label, an unlisted last label such as ``local-target-test``,
  a ``.local`` name, an IP address); never a port;
* ``topLevelDomain`` is the public suffix (``us-east-1.elasticbeanstalk.com``), ``""`` for an invalid host;
* ``subdomain`` is what precedes the domain, less its first 4 characters when it starts with ``www``
  (Node's ``substring(4)``, not the Python SDK's 3-character bug);
* ``path``, ``query`` (without ``?``) and ``fragment`` (without ``#``), plus ``<field>_lc`` lower-cased.

Results are cached per URL string in a bounded LRU cache; callers must treat them as read-only.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from publicsuffixlist import PublicSuffixList

__all__ = ["EMPTY_URL_CONTEXT", "parse_domain", "url_context", "warm_up"]

# parse-uri 1.x, loose mode (the default): groups 6 host, 9 path, 12 query, 13 anchor.
_LOOSE = re.compile(
    r"^(?:(?![^:@]+:[^:@/]*@)([^:/?#.]+):)?(?://)?((?:(([^:@]*)(?::([^:@]*))?)?@)?([^:/?#]*)(?::(\d*))?)"
    r"(((/(?:[^?#](?![^?#/]*\.[^?#/.]+(?:[?#]|$)))*/?)?([^?#/]*))(?:\?([^#]*))?(?:#(.*))?)"
)

_psl: PublicSuffixList | None = None


def _suffix_list() -> PublicSuffixList:
    global _psl
    if _psl is None:
        _psl = PublicSuffixList()
    return _psl


def warm_up() -> None:
    """Load the public-suffix list now (about 50 ms) rather than during the first decision."""
    _suffix_list()


_LABEL = re.compile(r"^[a-z0-9-]{1,63}$")


def _valid_host(lowered: str) -> bool:
    """psl's ``validate``: 1..255 characters, labels of 1..63 of ``[a-z0-9-]`` not starting or ending with
    a dash (a non-ASCII label is checked in its punycode form)."""
    if not 0 < len(lowered) <= 255:
        return False
    for raw in lowered.split("."):
        label = raw
        if not raw.isascii():
            try:
                label = "xn--" + raw.encode("punycode").decode("ascii")
            except UnicodeError:
                return False
        if not _LABEL.match(label) or label[0] == "-" or label[-1] == "-":
            return False
    return True


@lru_cache(maxsize=4096)
def parse_domain(host: str) -> tuple[str, str, str]:
    """``(domain, subdomain, topLevelDomain)`` of a host name (no port), as Node's ``parseDomainPsl``.

    A host psl calls valid — well-formed labels, a *listed* public suffix and a registrable domain below
    it — gives the registrable domain and suffix lower-cased (psl lower-cases and drops a trailing dot),
    and the subdomain without its first four characters when it starts with ``www`` (Node's
    ``substring(4)``). Any other host (one label, an unlisted last label such as ``local-target-test``, a
    ``.local`` name, an IP address, a bare public suffix) is kept as given as ``domain``, with empty
    subdomain and TLD.
    """
    lowered = host.lower()
    if lowered.endswith("."):
        lowered = lowered[:-1]
    if not _valid_host(lowered) or lowered.rsplit(".", 1)[-1] == "local":
        return host, "", ""
    psl = _suffix_list()
    registrable = psl.privatesuffix(lowered, accept_unknown=False)
    if registrable is None:
        return host, "", ""
    suffix = psl.publicsuffix(lowered, accept_unknown=False) or ""
    subdomain = lowered[: len(lowered) - len(registrable) - 1] if len(lowered) > len(registrable) else ""
    if subdomain.startswith("www"):
        subdomain = subdomain[4:]
    return registrable, subdomain, suffix


def _build(url: str) -> dict[str, str]:
    match = _LOOSE.match(url)
    host = path = query = fragment = ""
    if match is not None:
        host = match.group(6) or ""
        path = match.group(9) or ""
        query = match.group(12) or ""
        fragment = match.group(13) or ""
    domain, subdomain, tld = parse_domain(host)
    return {
        "url": url,
        "path": path,
        "query": query,
        "fragment": fragment,
        "subdomain": subdomain,
        "domain": domain,
        "topLevelDomain": tld,
        "url_lc": url.lower(),
        "path_lc": path.lower(),
        "query_lc": query.lower(),
        "fragment_lc": fragment.lower(),
        "subdomain_lc": subdomain.lower(),
        "domain_lc": domain.lower(),
        "topLevelDomain_lc": tld.lower(),
    }


EMPTY_URL_CONTEXT: dict[str, Any] = _build("")


@lru_cache(maxsize=4096)
def url_context(url: str) -> dict[str, Any]:
    """The ``page``/``referring`` context of a URL (cached; do not mutate the result)."""
    if not url:
        return EMPTY_URL_CONTEXT
    return _build(url)
