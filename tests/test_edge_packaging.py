"""The local Target stand-in is a development tool (``targetd-edge``, tools/edge): no server module imports
it, and neither the server wheel, the ``targetd`` command nor the Docker image carries it."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from targetd_server.main import build_parser
from tests.support import REPO

SERVER_SRC = REPO / "server" / "targetd_server"
EDGE_SRC = REPO / "tools" / "edge" / "src" / "targetd_edge"


def _imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` / ``from … import`` statement of ``path`` names (absolute imports)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_no_server_module_imports_the_edge() -> None:
    sources = sorted(SERVER_SRC.rglob("*.py"))
    assert sources
    offenders = {
        str(path.relative_to(REPO)): sorted(
            name
            for name in _imported_modules(path)
            if name.split(".")[0] == "targetd_edge" or name.startswith("targetd_server.edge")
        )
        for path in sources
    }
    assert not {path: names for path, names in offenders.items() if names}
    assert not list((SERVER_SRC / "edge").glob("*.py"))  # (a stale __pycache__ may remain)


def test_the_targetd_command_has_no_edge_subcommand() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["edge"])
    scripts = {ep.name: ep.value for ep in metadata.entry_points(group="console_scripts")}
    assert scripts["targetd"] == "targetd_server.main:main"
    assert scripts["targetd-edge"] == "targetd_edge.cli:main"
    server_scripts = {ep.value for ep in metadata.distribution("targetd-server").entry_points}
    assert not [value for value in server_scripts if value.startswith("targetd_edge")]


def _wheel_package_dirs() -> list[Path]:
    wheel = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert set(wheel) <= {"packages", "artifacts"}, f"review the edge check for {sorted(wheel)}"
    # (artifacts: the mypyc extensions of the server's own modules, tools/compile.py)
    assert all(pattern.startswith("server/targetd_server/") for pattern in wheel.get("artifacts", []))
    return [(REPO / package).resolve() for package in wheel["packages"]]


def _built_wheel_files(out: Path) -> list[str] | None:
    """The server wheel's file list, built with ``build`` (no isolation); None when it cannot be built here."""
    if importlib.util.find_spec("build") is None or importlib.util.find_spec("hatchling") is None:
        return None
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("targetd_server-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_server_wheel_leaves_the_edge_out(tmp_path: Path) -> None:
    packages = _wheel_package_dirs()
    assert packages == [SERVER_SRC.resolve()]
    edge = EDGE_SRC.resolve()
    assert all(edge != package and package not in edge.parents for package in packages)
    files = _built_wheel_files(tmp_path)
    if files is not None:
        assert "targetd_server/main.py" in files
        if (
            SERVER_SRC / "_native.json"
        ).is_file():  # compiled (make compile): the wheel carries the extensions
            assert "targetd_server/_native.json" in files
            assert any(
                name.startswith("targetd_server/engine/decide.") and name.endswith(".so") for name in files
            )
        assert not [name for name in files if name.startswith(("targetd_edge/", "targetd_server/edge/"))]


def test_the_image_installs_the_api_and_the_server_only() -> None:
    copies = [
        line.split()[1]
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
    ]
    # (tools/compile.py, the mypyc build of the hot modules, is the one tool the image needs)
    assert not [
        source
        for source in copies
        if source.startswith(("clients", "tools")) and source != "tools/compile.py"
    ]
    assert "api/python" in copies
