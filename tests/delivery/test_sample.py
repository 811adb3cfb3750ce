"""The offline default: deploy/dev.yaml is a valid configuration pointing at the local stand-in, and the
bundled sample artifact compiles with what docs/remote.md promises."""

from __future__ import annotations

import json

from targetd_server.config import load_settings
from targetd_server.engine import compile_artifact
from tests.delivery.support import SAMPLE
from tests.support import REPO


def test_dev_config_is_on_device_against_loopback() -> None:
    settings = load_settings(environ={}, config_file=str(REPO / "deploy" / "dev.yaml"))
    assert settings.decisioning_method == "on-device"
    assert settings.client == "acmeclient"
    for value in (settings.cdn_base_path, settings.server_domain, settings.edge_host_template):
        assert value is not None and "127.0.0.1:8087" in value  # nothing leaves the machine
    assert settings.secure is False


def test_sample_artifact() -> None:
    raw = json.loads((SAMPLE / "acmeclient" / "production" / "v1" / "rules.json").read_text())
    artifact = compile_artifact(raw)
    assert artifact.local_mboxes == {"home", "product1", "hero-banner", "geo-banner", "target-global-mbox"}
    assert "recommendations" in artifact.remote_mboxes
    assert artifact.local_views == {"checkout"}
    assert artifact.geo_targeting_enabled
