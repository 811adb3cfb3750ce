"""The import rules of docs/architecture.md, checked on the source: each layer imports only the layers
below it, and only their public API (a package's ``__init__`` names, never its private modules)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "server" / "targetd_server"

# layer -> the targetd_server modules/packages it may import (besides itself).
BASE = {"errors", "ids", "config", "metrics", "logs", "native", "__init__"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "ids": set(),
    "logs": set(),
    "metrics": set(),
    "native": set(),
    "config": {"errors"},
    "tracing": {"config", "__init__"},
    "transport": {"config", "errors", "__init__", "tracing"},
    "engine": {"errors", "ids"},
    "events": BASE,
    "artifacts": BASE | {"engine", "events", "transport"},
    "delivery": BASE | {"engine", "transport"},
    "calls": BASE | {"engine", "artifacts", "delivery", "events"},
    "http_edge": BASE | {"calls"},
    "service": BASE | {"calls", "http_edge", "tracing"},
    "probe": BASE,
    "workers": BASE | {"service"},
    "outbox_cli": BASE | {"delivery"},
    "main": BASE | {"service", "workers", "probe", "outbox_cli"},
}
# Packages whose public API is their __init__: other layers may not import their submodules.
PACKAGES = {"engine", "artifacts", "delivery", "events", "calls", "service", "http_edge", "transport"}


def _layer(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "targetd_server":  # a submodule, or a name of the package's __init__
                for alias in node.names:
                    is_module = (PACKAGE / alias.name).is_dir() or (PACKAGE / f"{alias.name}.py").exists()
                    found.append(f"targetd_server.{alias.name if is_module else '__init__'}")
            else:
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return [name for name in found if name.startswith("targetd_server.") or name.startswith("targetd_edge")]


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_belongs_to_a_known_layer() -> None:
    unknown = {_layer(path) for path in _sources()} - set(ALLOWED) - {"__init__"}
    assert not unknown, f"add these to docs/architecture.md and ALLOWED: {sorted(unknown)}"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layer_imports(path: Path) -> None:
    layer = _layer(path)
    if layer == "__init__":
        return
    for name in _imports(path):
        assert not name.startswith("targetd_edge"), (
            f"{path.name}: server code never imports the edge stand-in"
        )
        parts = name.split(".")
        target = parts[1]
        if target == layer:
            continue
        assert target in ALLOWED[layer], f"{layer} may not import {name} (docs/architecture.md)"
        if target in PACKAGES:
            assert len(parts) == 2, (
                f"{path.name}: import {target}'s public API (targetd_server.{target}), not {name}"
            )


def test_engine_public_api_is_its_all() -> None:
    from targetd_server import engine

    for name in engine.__all__:
        assert hasattr(engine, name)
