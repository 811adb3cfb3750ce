"""The Python client depends on targetd-api, grpcio and protobuf only (checked on what importing it loads),
and the distributions depend on each other one way: server → targetd-api ← client."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

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


def _names(requirements: list[str]) -> set[str]:
    """Distribution names of requirement strings, normalized (PEP 503); extras-only ones left out."""
    names = set()
    for requirement in requirements:
        if "extra ==" in requirement:
            continue
        name = re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0]
        names.add(re.sub(r"[-_.]+", "-", name).lower())
    return names


def test_declared_dependencies() -> None:
    project = tomllib.loads((REPO / "clients" / "python" / "pyproject.toml").read_text())["project"]
    assert _names(project["dependencies"]) == {"targetd-api", "grpcio", "protobuf"}


def test_api_distribution_depends_on_grpcio_and_protobuf_only() -> None:
    project = tomllib.loads((REPO / "api" / "python" / "pyproject.toml").read_text())["project"]
    assert project["name"] == "targetd-api"
    assert _names(project["dependencies"]) == {"grpcio", "protobuf"}


def test_installed_metadata_server_needs_the_api_not_the_client() -> None:
    server = _names(metadata.requires("targetd-server") or [])
    assert "targetd-api" in server
    assert "targetd-client" not in server
    assert "targetd-api" in _names(metadata.requires("targetd-client") or [])
    assert not _names(metadata.requires("targetd-api") or []) & {"targetd-client", "targetd-server"}


def test_the_stubs_and_the_mapping_come_from_the_api_distribution() -> None:
    files = {str(path) for path in metadata.files("targetd-client") or []}
    assert not any(path.startswith("targetd/") for path in files), files
    import targetd.json_format
    import targetd.v1.delivery_pb2

    api_src = (REPO / "api" / "python" / "src").resolve()
    for module in (targetd.json_format, targetd.v1.delivery_pb2):
        assert module.__file__ is not None
        assert api_src in Path(module.__file__).resolve().parents, module.__file__
