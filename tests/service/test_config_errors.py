"""Configuration errors at start-up (issue 12): every unreadable file or bad value ends ``targetd serve``
with ``targetd: configuration error: …`` naming the option, exit status 2, and no traceback — a real
``targetd serve`` child process for each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from tests.support import REPO

BASE = ["--client", "acmeclient", "--organization-id", "1234567890@AdobeOrg", "--listen", "127.0.0.1:0"]


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "targetd_server.main",
            "serve",
            *BASE,
            "--data-dir",
            str(tmp_path / "d"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


def _assert_config_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("targetd: configuration error: "), result.stderr
    for needle in needles:
        assert needle in line, line


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("pem")
    cert = trustme.CA().issue_cert("127.0.0.1")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


def test_a_missing_tls_key_file(tmp_path: Path, pem: tuple[Path, Path]) -> None:
    cert, _ = pem
    missing = tmp_path / "nope.key"
    result = _serve(tmp_path, "--tls-cert", str(cert), "--tls-key", str(missing))
    _assert_config_error(result, "tls_key", str(missing), "cannot be read")


def test_a_tls_certificate_that_is_not_pem(tmp_path: Path, pem: tuple[Path, Path]) -> None:
    _, key = pem
    garbage = tmp_path / "cert.pem"
    garbage.write_text("not a certificate")
    result = _serve(tmp_path, "--tls-cert", str(garbage), "--tls-key", str(key))
    _assert_config_error(result, "tls_cert", "not a PEM file")


def test_a_missing_client_ca_file(tmp_path: Path, pem: tuple[Path, Path]) -> None:
    cert, key = pem
    result = _serve(
        tmp_path, "--tls-cert", str(cert), "--tls-key", str(key), "--tls-client-ca", str(tmp_path / "ca")
    )
    _assert_config_error(result, "tls_client_ca", "cannot be read")


def test_an_unreadable_artifact_payload_file(tmp_path: Path) -> None:
    result = _serve(
        tmp_path, "--decisioning-method", "on-device", "--artifact-payload", f"@{tmp_path}/no.json"
    )
    _assert_config_error(result, "artifact_payload", "cannot be read")


def test_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = subprocess.run(
        [sys.executable, "-m", "targetd_server.main", "serve", *BASE, "--data-dir", str(blocker / "sub")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    _assert_config_error(result, "data_dir")


def test_an_unreadable_config_file(tmp_path: Path) -> None:
    result = _serve(tmp_path, "--config", str(tmp_path / "missing.yaml"))
    _assert_config_error(result, "config file", "missing.yaml")


@pytest.mark.parametrize(
    ("flag", "value", "option"),
    [
        ("--timeout", "soon", "timeout"),
        ("--log-level", "loud", "log_level"),
        ("--max-mboxes-per-request", "0", "max_mboxes_per_request"),
        ("--artifact-max-bytes", "-1", "artifact_max_bytes"),
        ("--artifact-download-timeout", "0", "artifact_download_timeout"),
        ("--max-string-length", "many", "max_string_length"),
    ],
)
def test_a_bad_value(tmp_path: Path, flag: str, value: str, option: str) -> None:
    _assert_config_error(_serve(tmp_path, flag, value), option)
