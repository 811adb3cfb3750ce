"""The compiled modules (mypyc, ``make compile``): the ones listed run compiled in CI and match their
source; an extension older than its source, or a listed module without one, is reported."""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from targetd_server.native import MANIFEST, NativeStatus, log_native_status, native_status

ROOT = Path(__file__).resolve().parents[1]


def test_the_listed_modules_run_compiled_and_match_their_source() -> None:
    status = native_status()
    assert not status.stale, f"extensions older than their source (run `make compile`): {status.stale}"
    if os.environ.get("CI") != "true":
        return  # (a local pytest without `make compile` runs everything from source: correct, slower)
    listed = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "compile.py"), "--sources"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert MANIFEST.is_file(), "make test compiles the hot modules first (make compile)"
    assert not status.source, f"listed but loaded from source: {status.source}"
    assert len(status.compiled) == len(listed)
    decide = importlib.import_module("targetd_server.engine.decide")
    assert str(decide.__file__).endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    assert Path(str(decide.__file__)).is_file()


def _package(root: Path) -> Path:
    package = root / "fakepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "built.py").write_text("x = 1\n")
    # (find_spec only locates the extension, it never loads it: an empty file stands in for one)
    (package / f"built{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    (package / "plain.py").write_text("y = 2\n")
    return package


def _manifest(package: Path, modules: dict[str, str]) -> Path:
    path = package / "_native.json"
    path.write_text(json.dumps({"modules": modules}))
    return path


def test_a_source_changed_after_the_build_is_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sha = hashlib.sha256((package / "built.py").read_bytes()).hexdigest()
    manifest = _manifest(package, {"fakepkg.built": sha, "fakepkg.plain": "0" * 64})
    assert native_status(manifest) == NativeStatus(compiled=("fakepkg.built",), source=("fakepkg.plain",))
    (package / "built.py").write_text("x = 2\n")
    assert native_status(manifest).stale == ("fakepkg.built",)


def test_stale_and_uncompiled_modules_are_logged_with_the_remedy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("targetd.test_native")
    with caplog.at_level(logging.INFO, logger=log.name):
        log_native_status(log, NativeStatus(stale=("a.b",), source=("c.d",)))
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 2 and all("make compile" in m for m in messages)
    assert getattr(caplog.records[0], "stale", None) == "a.b"


@pytest.mark.parametrize("content", [None, "not json", '{"no": "modules"}', "[1]"])
def test_a_missing_or_unreadable_manifest_means_nothing_compiled(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "_native.json"
    if content is not None:
        path.write_text(content)
    assert native_status(path) == NativeStatus()
