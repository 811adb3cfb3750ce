"""``targetd probe`` (a real child process) against real in-process servers on port 0: plaintext, TLS and
mutual TLS, with flags and with the ``TARGETD_*`` environment."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import trustme

from targetd_server.config import Settings
from targetd_server.service import start_server
from tests.support import REPO


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    base: dict[str, Any] = {
        "client": "acmeclient",
        "organization_id": "1234567890@AdobeOrg",
        "listen": "127.0.0.1:0",
        "data_dir": str(tmp_path),
        "grace_period": 1.0,
    }
    return Settings(**{**base, **extra})


async def _probe(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TARGETD_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "targetd_server.main",
        "probe",
        "--timeout",
        "2",  # a refused handshake is retried until then
        *args,
        env={**clean, **(env or {})},
        cwd=REPO,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await proc.communicate()
    return proc.returncode or 0, stderr.decode()


def _pki(tmp_path: Path) -> dict[str, str]:
    ca = trustme.CA()
    server = ca.issue_cert("localhost")
    client = ca.issue_cert("probe@example")
    files = {
        "ca": tmp_path / "ca.pem",
        "cert": tmp_path / "cert.pem",
        "key": tmp_path / "key.pem",
        "client_cert": tmp_path / "client.pem",
        "client_key": tmp_path / "client-key.pem",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    client.cert_chain_pems[0].write_to_path(str(files["client_cert"]))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    return {name: str(path) for name, path in files.items()}


async def test_probe_plaintext(tmp_path: Path) -> None:
    running = await start_server(_settings(tmp_path))
    try:
        assert await _probe("--address", f"127.0.0.1:{running.port}") == (0, "")
        assert (await _probe(env={"TARGETD_PROBE_ADDRESS": f"127.0.0.1:{running.port}"}))[0] == 0
    finally:
        await running.stop()


async def test_probe_speaks_tls_with_flags_and_environment(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    running = await start_server(_settings(tmp_path, tls_cert=pki["cert"], tls_key=pki["key"]))
    address = f"127.0.0.1:{running.port}"
    try:
        code, stderr = await _probe(
            "--address", address, "--tls-ca", pki["ca"], "--tls-server-name", "localhost"
        )
        assert code == 0, stderr
        env = {
            "TARGETD_PROBE_ADDRESS": address,
            "TARGETD_TLS_CA": pki["ca"],
            "TARGETD_TLS_SERVER_NAME": "localhost",
            # the server's own certificate in the environment (a container set up for `targetd serve`)
            "TARGETD_TLS_CERT": pki["cert"],
            "TARGETD_TLS_KEY": pki["key"],
        }
        code, stderr = await _probe(env=env)
        assert code == 0, stderr
        # plaintext against a TLS server, and a CA that did not sign it: unhealthy
        assert (await _probe("--address", address))[0] == 1
        other = trustme.CA()
        other.cert_pem.write_to_path(str(tmp_path / "other.pem"))
        code, _ = await _probe(
            "--address", address, "--tls-ca", str(tmp_path / "other.pem"), "--tls-server-name", "localhost"
        )
        assert code == 1
    finally:
        await running.stop()


async def test_probe_presents_a_client_certificate_to_mtls(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    running = await start_server(
        _settings(tmp_path, tls_cert=pki["cert"], tls_key=pki["key"], tls_client_ca=pki["ca"])
    )
    address = f"127.0.0.1:{running.port}"
    tls = ["--address", address, "--tls-ca", pki["ca"], "--tls-server-name", "localhost"]
    try:
        code, stderr = await _probe(*tls, "--tls-cert", pki["client_cert"], "--tls-key", pki["client_key"])
        assert code == 0, stderr
        assert (await _probe(*tls))[0] == 1  # no client certificate: refused
        code, stderr = await _probe(*tls, "--tls-cert", pki["client_cert"])
        assert code == 2 and "go together" in stderr
    finally:
        await running.stop()
