"""The Python client depends on grpcio and protobuf only (checked on what importing it loads)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

from tests.support import REPO

PROBE = """
import json, sys
import targetd_client
from targetd_client import AsyncTargetClient, TargetClient
top = {name.split(".")[0] for name in sys.modules}
print(json.dumps(sorted(top - set(sys.stdlib_module_names) - set(sys.builtin_module_names))))
"""


def test_importing_the_client_loads_grpc_and_protobuf_only() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(out.stdout))
    # grpcio itself imports its optional companions when they are installed (grpc_tools, grpc_health, ...)
    # and its own dependency typing_extensions; Cython and the interpreter add their bookkeeping modules.
    ours = {"targetd", "targetd_client"}
    # sitecustomize is the test run's loopback-only network guard (tests/netguard).
    allowed = {
        "google",
        "typing_extensions",
        "__main__",
        "cython_runtime",
        "_distutils_hack",
        "sitecustomize",
    }
    unexpected = {name for name in loaded - ours - allowed if not name.startswith(("grpc", "_cython"))}
    assert not unexpected, unexpected
    assert "targetd_server" not in loaded


def test_declared_dependencies() -> None:
    project = tomllib.loads((REPO / "clients" / "python" / "pyproject.toml").read_text())["project"]
    names = {dep.split(">")[0].split("=")[0].split("[")[0].strip() for dep in project["dependencies"]}
    assert names == {"grpcio", "protobuf"}
