"""Settings: precedence (flags > environment > file > defaults), validation messages, coercion."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from targetd_server.config import Settings, add_arguments, load_settings, settings_table
from targetd_server.errors import ConfigError


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    config = tmp_path / "targetd.yaml"
    config.write_text("client: fromfile\norganization_id: org@AdobeOrg\ntimeout: 1000\npolling_interval: 0\n")
    env = {"TARGETD_TIMEOUT": "2000", "TARGETD_CLIENT": "fromenv"}
    settings = load_settings(_args("--config", str(config), "--client", "fromflag"), environ=env)
    assert settings.client == "fromflag"  # flag beats env and file
    assert settings.timeout == 2000  # env beats file
    assert settings.polling_interval == 0  # file beats default
    assert settings.organization_id == "org@AdobeOrg"
    assert settings.decisioning_method == "server-side"  # the SDK's default


def test_config_file_from_environment_and_types(tmp_path: Path) -> None:
    config = tmp_path / "targetd.json"
    config.write_text('{"client": "c", "organization_id": "o", "secure": false, "environment": "Staging"}')
    settings = load_settings(None, environ={"TARGETD_CONFIG": str(config), "TARGETD_TELEMETRY_ENABLED": "no"})
    assert settings.secure is False
    assert settings.telemetry_enabled is False
    assert settings.environment == "staging"  # Node lower-cases any environment name


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"organization_id": "o"}, "Client is required"),
        ({"client": "c"}, "Organization Id is required"),
        (
            {"client": "c", "organization_id": "o", "decisioning_method": "local"},
            "Invalid Decisioning Method.  Must be set to one of: on-device,server-side,hybrid",
        ),
        ({"client": "c", "organization_id": "o", "tls_cert": "x.pem"}, "tls_cert and tls_key go together"),
    ],
)
def test_validation_messages(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings(**values)  # type: ignore[arg-type]
    assert str(info.value) == message or message in str(info.value)


def test_bad_values_name_the_option_and_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"timeout \(TARGETD_TIMEOUT\): 'soon' is not a valid int"):
        load_settings(None, environ={"TARGETD_TIMEOUT": "soon", "TARGETD_CLIENT": "c"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("client: c\nbogus: 1\n")
    with pytest.raises(ConfigError, match="unknown option"):
        load_settings(None, environ={}, config_file=str(bad))


def test_settings_are_frozen() -> None:
    settings = Settings(client="c", organization_id="o")
    with pytest.raises(AttributeError):
        settings.client = "other"  # type: ignore[misc]


def test_table_lists_every_option() -> None:
    table = settings_table()
    for name in ("client", "organization_id", "polling_interval", "artifact_payload", "listen", "auth_token"):
        assert f"`{name}`" in table


def test_readme_configuration_table_is_current() -> None:
    from targetd_server.config import with_settings_table
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    assert with_settings_table(readme) == readme, "README's option table is stale: run `make docs`"


@pytest.mark.parametrize("name", ["artifact_connect_timeout", "artifact_read_timeout", "heartbeat_interval"])
def test_durations_must_be_positive(name: str) -> None:
    with pytest.raises(ConfigError, match=f"{name} must be a positive number of seconds"):
        Settings(client="c", organization_id="o", **{name: 0})  # type: ignore[arg-type]
