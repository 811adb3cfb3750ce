"""``make lint``'s buf breaking compares the protos with the last released protocol, the committed image
protos/baseline.binpb (``make protos-baseline`` updates it on purpose): the protos of the tree pass, and a
copy with a field removed or renumbered fails."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import REPO

BUF = Path(sys.executable).with_name("buf")
BASELINE = REPO / "protos" / "baseline.binpb"


def breaking(workspace: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), "breaking", str(workspace), "--against", str(BASELINE), "--error-format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )


def copy_of_the_protos(tmp_path: Path) -> Path:
    workspace = tmp_path / "workspace"
    shutil.copytree(REPO / "protos", workspace / "protos", ignore=shutil.ignore_patterns("*.binpb", "*.sh"))
    shutil.copy(REPO / "buf.yaml", workspace / "buf.yaml")
    return workspace


def test_the_tree_is_compatible_with_the_baseline(tmp_path: Path) -> None:
    result = breaking(copy_of_the_protos(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (lambda text: re.sub(r"\n  optional string tnt_id = 1;", "\n", text, count=1), "FIELD_NO_DELETE"),
        (lambda text: text.replace("string tnt_id = 1;", "string tnt_id = 99;", 1), "FIELD_NO_DELETE"),
        (lambda text: text.replace("string tnt_id = 1;", "int64 tnt_id = 1;", 1), "FIELD_SAME_TYPE"),
    ],
    ids=["field removed", "field renumbered", "field type changed"],
)
def test_a_breaking_change_fails(tmp_path: Path, change: Callable[[str], str], rule: str) -> None:
    workspace = copy_of_the_protos(tmp_path)
    delivery = workspace / "protos" / "targetd" / "v1" / "delivery.proto"
    before = delivery.read_text()
    after = change(before)
    assert after != before
    delivery.write_text(after)
    result = breaking(workspace)
    assert result.returncode != 0
    rules = {json.loads(line)["type"] for line in result.stdout.splitlines() if line.strip()}
    assert rule in rules, result.stdout + result.stderr
