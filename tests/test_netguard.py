"""The test network guard holds in this process and in child processes."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest


def test_only_loopback_resolves_here() -> None:
    assert socket.getaddrinfo("127.0.0.1", 80)
    assert socket.getaddrinfo("localhost", 80)
    with pytest.raises(socket.gaierror, match="only loopback"):
        socket.getaddrinfo("acmeclient.tt.omtrdc.net", 443)
    with pytest.raises(socket.gaierror, match="only loopback"):
        socket.getaddrinfo("10.0.0.1", 80)


def test_child_processes_are_guarded_too() -> None:
    code = "import socket\ntry:\n    socket.getaddrinfo('assets.adobetarget.com', 443)\nexcept socket.gaierror as e:\n    print(e)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30).stdout
    assert "only loopback" in out
