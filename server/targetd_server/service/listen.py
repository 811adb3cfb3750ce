"""Why an address cannot be listened on, in words: gRPC's bind failure says only "Failed to bind", so the
address is tried once more with a plain socket (the options gRPC uses: ``SO_REUSEADDR``, and
``SO_REUSEPORT`` only where workers share the port) to learn the reason.

Thread affinity: none (blocking socket calls that return at once).
"""

from __future__ import annotations

import errno
import socket

from targetd_server.errors import ListenError

__all__ = ["check_listen", "listen_error", "split_address"]


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) → (host without brackets, port). Raises :class:`ListenError`."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ListenError(f"cannot listen on {address}: not a host:port address")
    return host.strip("[]") or "0.0.0.0", int(port)


def _reason(host: str, port: int, *, reuse_port: bool) -> str | None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve {host} ({exc.strerror})"
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "address in use"
            if exc.errno == errno.EADDRNOTAVAIL:
                return "address not available on this host"
            return exc.strerror or str(exc)
    return None


def listen_error(address: str, *, reuse_port: bool = False) -> ListenError:
    """The :class:`ListenError` for an address gRPC could not bind: ``cannot listen on HOST:PORT: address
    in use`` (or the reason the operating system gives)."""
    host, port = split_address(address)
    reason = _reason(host, port, reuse_port=reuse_port) or "gRPC could not bind it"
    return ListenError(f"cannot listen on {address}: {reason}")


def check_listen(address: str) -> None:
    """Raise :class:`ListenError` when ``address`` is in use or cannot be bound (port 0: never in use)."""
    host, port = split_address(address)
    if port == 0:
        return
    reason = _reason(host, port, reuse_port=False)
    if reason is not None:
        raise ListenError(f"cannot listen on {address}: {reason}")
