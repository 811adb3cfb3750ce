"""Every command the README shows works on a fresh clone after ``make run`` / ``make test``: make targets
exist, programs under ``.venv/bin`` are installed by the project, files named exist, the ``buf curl``
commands answer against a real targetd (the README's address replaced by the test server's), and a tool
the project does not install is marked optional."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from tests.support import REPO, TargetdProcess

README = REPO / "README.md"
DEFAULT_ADDRESS = "127.0.0.1:50051"


def commands() -> list[tuple[str, str]]:
    """(command, comment) of every line of the README's ``sh`` blocks."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)
    out = []
    for block in blocks:
        for line in block.splitlines():
            command, _, comment = line.partition("#")
            if command.strip():
                out.append((command.strip(), comment.strip()))
    return out


def make_targets(directory: Path) -> set[str]:
    text = (directory / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*):", text, flags=re.M))


def test_the_readme_shows_commands() -> None:
    shown = [command for command, _ in commands()]
    assert any(c.startswith("make run") for c in shown)
    assert any(c.startswith(".venv/bin/buf curl") for c in shown)


def test_every_command_is_runnable_on_a_fresh_clone() -> None:
    unknown = []
    for command, comment in commands():
        words = shlex.split(command)
        if words[0] == "make":
            directory = REPO / words[2] if words[1] == "-C" else REPO
            target = words[3] if words[1] == "-C" else words[1]
            assert target in make_targets(directory), f"{command}: no target {target!r}"
        elif words[0].startswith(".venv/bin/"):
            program = REPO / words[0]
            assert program.is_file(), f"{command}: {words[0]} is not installed by `make install`"
        elif words[0] == "node":
            assert (REPO / words[1]).is_file(), command
        elif "optional" in comment:
            continue  # a tool the project does not install, marked so
        else:
            unknown.append(command)
    assert not unknown, (
        f"commands that are neither make targets, project programs nor marked optional: {unknown}"
    )


def test_the_buf_curl_commands_answer(server: TargetdProcess) -> None:
    shown = [command for command, _ in commands() if command.startswith(".venv/bin/buf curl")]
    assert len(shown) >= 2
    for command in shown:
        words = [word.replace(DEFAULT_ADDRESS, server.address) for word in shlex.split(command)]
        result = subprocess.run(
            [str(REPO / words[0]), *words[1:]], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, f"{command}: {result.stderr}"
        if command.endswith("/GetStatus"):
            assert json.loads(result.stdout)["client"] == "acmeclient"
        else:
            assert "targetd.v1.DecisioningService/GetOffers" in result.stdout.split()
