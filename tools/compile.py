"""Compile targetd's hot modules with mypyc, in place: ``make compile`` (``make install``, ``make run`` and
``make test`` run it when a listed source changed).

``python tools/compile.py`` type-checks the modules of ``MODULES`` with the project's mypy settings,
compiles them to C extensions (one shared library, ``server/targetd_native__mypyc.*.so``, and one small
extension per module, next to its ``.py``) and writes ``server/targetd_server/_native.json``: the
SHA-256 of each compiled source, which ``targetd_server.native`` checks at start so that an extension
older than its source is reported, never silently run. ``--sources`` prints the listed sources (the
Makefile's prerequisites); ``--clean`` removes every extension and the manifest (back to pure Python).

Why: the decision path is CPU-bound Python (bench/README, *Instructions per call*); compiled, the same
source costs 16% fewer instructions per one-mbox execute and 26% fewer per prefetch. The sources stay
the reference: they run unchanged without a C compiler, and ``targetd_server.native`` says which modules
are compiled. Needs gcc and the Python headers (present on a machine with ``make``; the Dockerfile's
build stage installs them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "server"
PACKAGE = SERVER / "targetd_server"
MANIFEST = PACKAGE / "_native.json"
BUILD = ROOT / "build" / "native"
GROUP = "targetd_native"  # the shared library, top-level: server/targetd_native__mypyc.*.so
# (top-level because mypyc sets each module's __file__ relative to it)

# The modules on the path of every decision in the serving process; the rest (start-up, configuration,
# the CLI, the HTTP edge) is not worth a compiled copy. The sender's request path (delivery/merge.py,
# http.py, policy.py, breaker.py, transport/_http1.py) was tried and left out: bench/sustained.py at
# 3,000/s gave 179-203 µs of sender CPU per notification compiled against 167-181 µs from source (its
# cost is in the JSON mapping of targetd-api, uvloop and the system calls). A listed module must not be
# monkeypatched by tests (mypyc binds module globals and Final constants at compile time), nor its
# classes' methods replaced on an instance (compiled classes refuse it: why delivery/store.py, whose
# faults tests inject, is not listed); async generators are not compiled (service/rpc_metrics.py).
MODULES: tuple[str, ...] = (
    "targetd_server/ids.py",
    "targetd_server/engine/*.py",
    "targetd_server/calls/*.py",
    "targetd_server/service/servicer.py",
    "targetd_server/service/handlers.py",
    "targetd_server/service/status.py",
    "targetd_server/delivery/outbox.py",
)


def sources() -> list[Path]:
    """The compiled sources, sorted."""
    found: set[Path] = set()
    for pattern in MODULES:
        found.update(PACKAGE.parent.glob(pattern))
    return sorted(found)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SERVER).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def clean() -> None:
    """Remove every compiled extension of the package and the manifest."""
    for built in [*PACKAGE.rglob("*.so"), *SERVER.glob(f"{GROUP}__mypyc*.so")]:
        built.unlink()
    MANIFEST.unlink(missing_ok=True)
    shutil.rmtree(BUILD, ignore_errors=True)


def build() -> None:
    # (imported here: --sources and --clean run on any Python, without mypy or setuptools)
    from mypyc.build import mypycify  # noqa: PLC0415
    from setuptools import setup  # type: ignore[import-untyped]  # noqa: PLC0415

    from targetd_server.native import source_digest  # noqa: PLC0415  (the manifest's one reader)

    files = sources()
    clean()
    os.chdir(ROOT)
    extensions = mypycify(
        ["--config-file", str(ROOT / "pyproject.toml"), *(str(f.relative_to(ROOT)) for f in files)],
        opt_level="3",
        group_name=GROUP,
        target_dir=str(BUILD / "c"),
    )
    setup(
        name="targetd-native",
        packages=[],
        package_dir={"": "server"},
        ext_modules=extensions,
        script_args=["--quiet", "build_ext", "--inplace", "--build-temp", str(BUILD / "temp")],
    )
    manifest = {"modules": {module_name(f): source_digest(f) for f in files}}
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"compiled {len(files)} modules with mypyc ({MANIFEST.relative_to(ROOT)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", action="store_true", help="print the compiled sources and exit")
    parser.add_argument("--clean", action="store_true", help="remove the extensions and the manifest")
    args = parser.parse_args()
    if args.sources:
        print(" ".join(str(f.relative_to(ROOT)) for f in sources()))
        return 0
    if args.clean:
        clean()
        return 0
    build()
    return 0


if __name__ == "__main__":
    sys.exit(main())
