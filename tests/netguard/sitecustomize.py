"""Test-only network guard: every Python process of the test run (pytest itself, and the targetd / edge
processes it starts, which inherit ``PYTHONPATH``) may resolve and reach loopback addresses only.

A configuration that would call out of the machine (Target's real hosts, a CDN) fails fast with a
resolution error instead of sending a packet. Never installed outside tests.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

_real_getaddrinfo = socket.getaddrinfo
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    name = host.decode() if isinstance(host, bytes) else host
    if name is None or (isinstance(name, str) and _is_loopback(name)):
        return _real_getaddrinfo(host, *args, **kwargs)
    raise socket.gaierror(
        socket.EAI_NONAME, f"test network guard: only loopback may be reached, not {name!r}"
    )


socket.getaddrinfo = _guarded_getaddrinfo
