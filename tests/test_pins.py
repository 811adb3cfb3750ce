"""constraints.txt (``make lock``) pins every runtime and dev dependency the pyproject.toml files declare,
at a version the declaration allows, and this environment was installed with those pins (``make install``
passes ``-c constraints.txt``; so do CI, which runs ``make test``, and the Dockerfile)."""

from __future__ import annotations

import tomllib
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support import REPO

PYPROJECTS = [
    "pyproject.toml",
    "api/python/pyproject.toml",
    "clients/python/pyproject.toml",
    "tools/edge/pyproject.toml",
]
LOCAL = {"targetd-api", "targetd-client", "targetd-edge", "targetd-server"}


def declared() -> list[Requirement]:
    out = []
    for name in PYPROJECTS:
        project = tomllib.loads((REPO / name).read_text())["project"]
        specs = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            specs += extra
        out += [Requirement(spec) for spec in specs]
    return [r for r in out if canonicalize_name(r.name) not in LOCAL]


def pins() -> dict[str, tuple[str, Requirement]]:
    out: dict[str, tuple[str, Requirement]] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", line
            out[canonicalize_name(requirement.name)] = (spec.version, requirement)
    return out


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    pinned = pins()
    missing = sorted({r.name for r in declared() if canonicalize_name(r.name) not in pinned})
    assert not missing, f"not in constraints.txt: {missing}; run `make lock`"
    outside = [
        f"{r} (pinned {pinned[canonicalize_name(r.name)][0]})"
        for r in declared()
        if not r.specifier.contains(pinned[canonicalize_name(r.name)][0], prereleases=True)
    ]
    assert not outside, f"pins outside the declared ranges: {outside}; run `make lock`"


def test_this_environment_has_the_pinned_versions() -> None:
    environment: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    wrong = []
    for name, (version, requirement) in pins().items():
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue  # another platform's package (e.g. colorama on Windows)
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name}: not installed")
            continue
        if installed != version:
            wrong.append(f"{name}: {installed} installed, {version} pinned")
    assert not wrong, f"{wrong}; run `make install`"
