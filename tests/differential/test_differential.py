"""targetd against Adobe's Node SDK 2.4.3 on seeded random requests drawn from every shared test artifact.

See :mod:`tests.differential.run` for what is compared and normalised and :mod:`tests.differential.known`
for the allow-list of Node bugs. ``DIFFERENTIAL_COUNT`` cases per artifact (default 150: the whole module
stays well inside three minutes on two cores); ``make differential N=…`` runs a larger set outside pytest.
The Node side needs ``tests/differential/node_modules`` (``npm ci``, done by ``make test``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.differential.generate import generate
from tests.differential.run import ArtifactReport, artifacts, compare, run_artifacts

HERE = Path(__file__).resolve().parent
# The first test that uses the module's run waits for all of it (about two minutes on two cores).
pytestmark = pytest.mark.timeout(600)
COUNT = int(os.environ.get("DIFFERENTIAL_COUNT", "150"))
SEED = 13


def test_node_sdk_is_installed() -> None:
    """Not a skip: without node and the pinned SDK the differential cannot run, and that is a failure."""
    assert shutil.which("node"), "node is required for the differential test"
    package = HERE / "node_modules" / "@adobe" / "target-nodejs-sdk" / "package.json"
    assert package.is_file(), "run `make test` (npm ci in tests/differential) first"
    assert '"version": "2.4.3"' in package.read_text(encoding="utf-8")


def test_generation_is_seeded_and_varied() -> None:
    artifact = {"rules": {"mboxes": {"a": [{"condition": {"==": ["x", {"var": "mbox.p"}]}}]}}}
    first, again = generate(artifact, 200, 1), generate(artifact, 200, 1)
    assert first == again and first != generate(artifact, 200, 2)
    requests = [case["request"] for case in first]
    assert any("trace" in r for r in requests) and any("trace" not in r for r in requests)
    assert any("execute" in r for r in requests) and any("prefetch" in r for r in requests)
    assert any("views" in r.get("prefetch", {}) for r in requests)
    assert any("pageLoad" in r.get("execute", {}) for r in requests)
    assert any(
        m.get("parameters", {}).get("p") == "x"
        for r in requests
        for m in r.get("execute", {}).get("mboxes", [])
    )


def test_compare_reports_a_difference() -> None:
    """The comparison can fail: a changed option or a missing notification is a difference."""
    case = {"request": {"id": {"tntId": "t"}, "execute": {"mboxes": [{"name": "m"}]}}, "sessionId": "s"}
    node: dict[str, Any] = {
        "result": {"response": {"execute": {"mboxes": [{"name": "m", "options": [{"content": "a"}]}]}}},
        "error": None,
        "notifications": [
            {"requestId": "r", "context": {"window": {"width": 0}}, "notifications": [{"id": "n"}]}
        ],
    }
    same = {"result": node["result"], "error": None}
    report = ArtifactReport("x")
    compare([case], [node], [same], list(node["notifications"]), report)
    assert (report.agreed, report.decisions_agreed) == (1, 1)
    changed = {
        "result": {"response": {"execute": {"mboxes": [{"name": "m", "options": [{"content": "b"}]}]}}}
    }
    report = ArtifactReport("x")
    compare([case], [node], [{**changed, "error": None}], list(node["notifications"]), report)
    assert (report.agreed, report.decisions_agreed, len(report.differences)) == (0, 0, 1)
    report = ArtifactReport("x")
    compare([case], [node], [same], [], report)
    assert (report.agreed, report.decisions_agreed) == (0, 1)
    assert "notifications" in report.differences[0]


@pytest.fixture(scope="module")
def reports() -> dict[str, ArtifactReport]:
    """Both sides over every artifact, once: one Node process, targetd servers three at a time."""
    return {report.artifact: report for report in run_artifacts(artifacts(), COUNT, SEED)}


@pytest.mark.parametrize("artifact", [path.stem for path in artifacts()])
def test_targetd_answers_as_the_node_sdk(reports: dict[str, ArtifactReport], artifact: str) -> None:
    report = reports[artifact]
    assert report.cases == COUNT
    assert report.decisions_agreed == report.node_answered, "\n".join(report.differences[:5])
    assert not report.differences, f"{len(report.differences)} differences:\n" + "\n".join(
        report.differences[:5]
    )
