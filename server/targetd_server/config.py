"""Configuration: one frozen :class:`Settings` built from defaults, an optional file, the environment and
command-line flags, each overriding the one before (flags > ``TARGETD_*`` environment > file > defaults).

Every option of the Target SDKs' ``TargetClient.create()`` is here under its Python SDK name (units follow
the Node SDK where the two differ: milliseconds), plus the service's own options. The file is YAML or JSON
with the same snake_case keys. ``python -m targetd_server.config`` prints the table used in the README.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from targetd_server.errors import ConfigError

DECISIONING_METHODS: Final = ("on-device", "server-side", "hybrid")  # Node's enum order
ENV_PREFIX: Final = "TARGETD_"


def _opt(default: Any, help: str, *, kind: type = str, optional: bool = False) -> Any:
    return field(default=default, metadata={"help": help, "kind": kind, "optional": optional})


@dataclass(frozen=True, slots=True)
class Settings:
    """The service configuration. Immutable; build it with :func:`load_settings`."""

    # --- the SDK's create() options -----------------------------------------------------------------
    client: str = _opt("", "Target client code (required).")
    organization_id: str = _opt("", "Adobe IMS organization id, e.g. 1234567890@AdobeOrg (required).")
    decisioning_method: str = _opt("server-side", "on-device, server-side or hybrid.")
    timeout: int = _opt(3000, "Delivery API call timeout, ms.", kind=int)
    server_domain: str | None = _opt(None, "Delivery API host when no edge cluster is known.", optional=True)
    secure: bool = _opt(True, "Use https for Target calls (false: http).", kind=bool)
    target_location_hint: str | None = _opt(None, "Edge cluster hint, e.g. 28.", optional=True)
    polling_interval: int = _opt(
        300000, "Artifact polling interval, ms; 0 turns polling off; minimum 300000 (Node).", kind=int
    )
    maximum_wait_ready: int = _opt(
        0, "How long an on-device call waits for the first artifact before failing, ms.", kind=int
    )
    artifact_location: str | None = _opt(
        None, "Artifact URL (https/http/file://) or path; default: the Target CDN URL.", optional=True
    )
    artifact_payload: str | None = _opt(
        None, "Artifact JSON inline, or @path to a file holding it.", optional=True
    )
    environment: str = _opt("production", "Target environment name (lower-cased).")
    cdn_environment: str = _opt("production", "CDN environment: production, staging or development.")
    cdn_base_path: str | None = _opt(
        None, "CDN host (or scheme://host:port) overriding the one of cdn_environment.", optional=True
    )
    environment_id: int | None = _opt(None, "Target environment id.", kind=int, optional=True)
    version: str | None = _opt(None, "Sent as the Delivery API version parameter.", optional=True)
    property_token: str | None = _opt(None, "Default at_property token.", optional=True)
    telemetry_enabled: bool = _opt(True, "Send on-device telemetry to Target.", kind=bool)

    # --- the service ---------------------------------------------------------------------------------
    listen: str = _opt("127.0.0.1:50051", "gRPC listen address host:port (port 0: any free port).")
    http_listen: str | None = _opt(
        None,
        "Delivery API over HTTP (POST /rest/v1/delivery, docs/http-edge.md) host:port; off when unset.",
        optional=True,
    )
    data_dir: str = _opt(".targetd-data", "Directory for the artifact cache and the notification outbox.")
    grace_period: float = _opt(10.0, "Seconds in-flight calls get to finish on shutdown.", kind=float)
    max_message_bytes: int = _opt(4 * 1024 * 1024, "Largest request or response message, bytes.", kind=int)
    keepalive_min_ping_interval: float = _opt(
        10.0, "Shortest client keepalive ping interval tolerated, seconds.", kind=float
    )
    max_connection_age: float = _opt(
        0.0,
        "Close client connections (GOAWAY) after this many seconds so long-lived channels rebalance; "
        "in-flight calls get grace_period (0: never).",
        kind=float,
    )
    heartbeat_interval: float = _opt(20.0, "SubscribeEvents heartbeat interval, seconds.", kind=float)
    max_stream_age: float = _opt(0.0, "Close event streams after this many seconds (0: never).", kind=float)
    subscriber_queue_size: int = _opt(256, "Events buffered per subscriber before it is cut off.", kind=int)
    artifact_connect_timeout: float = _opt(5.0, "Artifact download connect timeout, seconds.", kind=float)
    artifact_read_timeout: float = _opt(
        30.0, "Artifact download read timeout (longest wait for data), seconds.", kind=float
    )
    artifact_download_timeout: float = _opt(
        120.0, "Bound on one whole artifact download (connect + full body), seconds.", kind=float
    )
    artifact_max_bytes: int = _opt(
        64 * 1024 * 1024,
        "Largest artifact download as sent (compressed), bytes; larger is refused.",
        kind=int,
    )
    artifact_max_decompressed_bytes: int = _opt(
        64 * 1024 * 1024, "Largest artifact once decompressed, bytes; larger is refused.", kind=int
    )
    max_mboxes_per_request: int = _opt(
        50,
        "Mboxes per request (execute + prefetch + GetAttributes names); more is INVALID_ARGUMENT.",
        kind=int,
    )
    max_views_per_request: int = _opt(50, "Views per request; more is INVALID_ARGUMENT.", kind=int)
    max_items_per_field: int = _opt(
        100, "Entries of any other list or map of a request (parameters, notifications, ...).", kind=int
    )
    max_string_length: int = _opt(8192, "Characters of any string (or map key) of a request.", kind=int)
    edge_host_template: str = _opt(
        "mboxedge{cluster}.tt.omtrdc.net",
        "Delivery API host once an edge cluster is known ({cluster} is replaced); change only for a proxy "
        "or the local edge stand-in.",
    )
    delivery_pool_size: int = _opt(32, "Pooled HTTP connections (and concurrent calls) to Target.", kind=int)
    geo_timeout: int = _opt(
        1000, "IP geo lookup timeout, ms (a failed lookup decides without geo).", kind=int
    )
    geo_cache_size: int = _opt(10000, "IP geo lookups cached (least recently used evicted).", kind=int)
    outbox_max_rows: int = _opt(
        100000, "Notification outbox capacity, rows; when full new rows are refused and counted.", kind=int
    )
    outbox_commit_window: float = _opt(
        0.0,
        "Group commit window of the outbox, ms: the calls of one window share one SQLite transaction "
        "(0: follows the load: a lone call commits at once, calls made while others are in flight share "
        "a group of up to 1 ms).",
        kind=float,
    )
    outbox_commit_rows: int = _opt(256, "Rows after which an outbox group commits at once.", kind=int)
    outbox_batch_size: int = _opt(256, "Outbox rows the sender process claims at a time.", kind=int)
    outbox_concurrency: int = _opt(
        512,
        "Delivery API requests the sender process keeps in flight (its window; as many keep-alive "
        "connections).",
        kind=int,
    )
    outbox_max_backoff: float = _opt(60.0, "Longest wait between outbox retries, seconds.", kind=float)
    outbox_max_age: float = _opt(
        86400.0,
        "Seconds a row is retried on retryable failures (5xx, 408, 429, network) before it is quarantined.",
        kind=float,
    )
    outbox_reject_retries: int = _opt(
        5, "Times a row the Delivery API rejects (other 4xx) is retried before it is quarantined.", kind=int
    )
    outbox_flush_timeout: float = _opt(5.0, "Time the outbox gets to send on shutdown, seconds.", kind=float)
    polling_interval_minimum: int = _opt(
        300000, "Development only: polling_interval floor, ms (Node: 300000); lower only in tests.", kind=int
    )
    fixed_clock: int | None = _opt(
        None,
        "Development and tests only: on-device decisions see this epoch-ms time (differential test).",
        kind=int,
        optional=True,
    )
    tls_cert: str | None = _opt(None, "Server certificate (PEM) path; enables TLS.", optional=True)
    tls_key: str | None = _opt(None, "Server private key (PEM) path.", optional=True)
    tls_client_ca: str | None = _opt(
        None, "CA bundle (PEM) for client certificates; enables mTLS.", optional=True
    )
    auth_token: str | None = _opt(None, "Bearer token required in the authorization metadata.", optional=True)
    metrics_listen: str | None = _opt(
        None,
        "Admin HTTP host:port: /metrics, /healthz, /readyz (off when unset; docs/operations.md).",
        optional=True,
    )
    workers: int = _opt(
        1,
        "Worker processes sharing the gRPC port (SO_REUSEPORT), supervised; 1: one process, and a port in "
        "use is an error (docs/operations.md).",
        kind=int,
    )
    tracing: bool = _opt(False, "Export OpenTelemetry traces over OTLP/gRPC (docs/operations.md).", kind=bool)
    tracing_endpoint: str = _opt("http://127.0.0.1:4317", "OTLP/gRPC collector endpoint for traces.")
    tracing_sample_ratio: float = _opt(
        0.01, "Share of new traces sampled, 0 to 1 (a caller's sampled trace is always followed).", kind=float
    )
    log_level: str = _opt("info", "debug, info, warning or error.")
    log_format: str = _opt("json", "json or text.")

    def __post_init__(self) -> None:
        # The SDK's create() messages, verbatim.
        if not self.client:
            raise ConfigError("Client is required")
        if not self.organization_id:
            raise ConfigError("Organization Id is required")
        if self.decisioning_method not in DECISIONING_METHODS:
            raise ConfigError(
                "Invalid Decisioning Method.  Must be set to one of: " + ",".join(DECISIONING_METHODS)
            )
        if self.timeout <= 0:
            raise ConfigError("timeout must be a positive number of milliseconds")
        if self.polling_interval < 0:
            raise ConfigError("polling_interval must be 0 (off) or a number of milliseconds")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError("log_level must be debug, info, warning or error")
        if self.log_format not in ("json", "text"):
            raise ConfigError("log_format must be json or text")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert and tls_key go together: set both or neither")
        if self.tls_client_ca and not self.tls_cert:
            raise ConfigError("tls_client_ca (mTLS) needs tls_cert and tls_key")
        if self.max_message_bytes < 64 * 1024:
            raise ConfigError("max_message_bytes must be at least 65536")
        if self.subscriber_queue_size < 1:
            raise ConfigError("subscriber_queue_size must be at least 1")
        for name in (
            "delivery_pool_size",
            "geo_timeout",
            "outbox_max_rows",
            "outbox_batch_size",
            "outbox_concurrency",
            "outbox_reject_retries",
            "artifact_max_bytes",
            "artifact_max_decompressed_bytes",
            "max_mboxes_per_request",
            "max_views_per_request",
            "max_items_per_field",
            "max_string_length",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        for name in (
            "artifact_connect_timeout",
            "artifact_read_timeout",
            "artifact_download_timeout",
            "heartbeat_interval",
            "grace_period",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds")
        if self.max_stream_age < 0:
            raise ConfigError("max_stream_age must be 0 (never) or a number of seconds")
        if not 1 <= self.workers <= 64:
            raise ConfigError("workers must be between 1 and 64 (one outbox file each)")
        if not 0.0 <= self.tracing_sample_ratio <= 1.0:
            raise ConfigError("tracing_sample_ratio must be between 0 and 1")
        if self.max_connection_age < 0:
            raise ConfigError("max_connection_age must be 0 (never) or a number of seconds")

    @property
    def data_path(self) -> Path:
        """The data directory as a path (created by the components that write to it)."""
        return Path(self.data_dir)


_FIELDS: Final = {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(name: str, raw: Any, source: str) -> Any:
    spec = _FIELDS[name]
    kind: type = spec.metadata["kind"]
    if raw is None or (isinstance(raw, str) and raw == "" and spec.metadata["optional"]):
        if spec.metadata["optional"]:
            return None
        raise ConfigError(f"{name} ({source}): a value is required")
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind is int:
            if isinstance(raw, bool):
                raise ValueError(raw)
            return int(raw)
        if kind is float:
            return float(raw)
        if isinstance(raw, Mapping | list):
            return json.dumps(raw)  # an inline artifact_payload given as YAML/JSON structure
        return str(raw)
    except ValueError:
        raise ConfigError(f"{name} ({source}): {raw!r} is not a valid {kind.__name__}") from None


def _read_file(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) if not path.endswith(".json") else json.loads(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"config file {path}: not valid YAML/JSON ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of option names to values")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"config file {path}: unknown option(s) {', '.join(unknown)}")
    return data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one ``--kebab-name`` flag per option to ``parser`` (defaults left unset)."""
    parser.add_argument("--config", help="YAML or JSON file of options (env: TARGETD_CONFIG).")
    for name, spec in _FIELDS.items():
        parser.add_argument(
            "--" + name.replace("_", "-"), dest=name, default=None, help=spec.metadata["help"]
        )


def load_settings(
    args: argparse.Namespace | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> Settings:
    """Build the frozen settings: defaults < file < ``TARGETD_*`` environment < flags.

    Raises :class:`ConfigError` naming the option and the source of a bad value.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or (getattr(args, "config", None) if args else None) or environ.get("TARGETD_CONFIG")
    if path:
        for name, raw in _read_file(path).items():
            values[name] = _coerce(name, raw, f"file {path}")
    for name in _FIELDS:
        env_name = ENV_PREFIX + name.upper()
        if env_name in environ:
            values[name] = _coerce(name, environ[env_name], env_name)
    if args is not None:
        for name in _FIELDS:
            raw = getattr(args, name, None)
            if raw is not None:
                values[name] = _coerce(name, raw, "--" + name.replace("_", "-"))
    if "environment" in values and isinstance(values["environment"], str):
        values["environment"] = values["environment"].lower()  # Node: any string, lower-cased
    return Settings(**values)


def settings_table() -> str:
    """The options as a Markdown table (option, flag, environment, default, meaning)."""
    rows = ["| option | flag | environment | default | meaning |", "|---|---|---|---|---|"]
    for name, spec in _FIELDS.items():
        default = "—" if spec.default in (None, "") else f"`{spec.default}`"
        rows.append(
            f"| `{name}` | `--{name.replace('_', '-')}` | `{ENV_PREFIX}{name.upper()}` | "
            f"{default} | {spec.metadata['help']} |"
        )
    return "\n".join(rows)


README_START: Final = "<!-- config-table:start -->"
README_END: Final = "<!-- config-table:end -->"


def with_settings_table(readme: str) -> str:
    """``readme`` with the text between the config-table markers replaced by :func:`settings_table`."""
    head, _, rest = readme.partition(README_START)
    _, _, tail = rest.partition(README_END)
    return f"{head}{README_START}\n{settings_table()}\n{README_END}{tail}"


def main(argv: Sequence[str] | None = None) -> None:  # pragma: no cover - documentation helper
    """Print the options table, or with ``--write-readme PATH`` refresh it inside that README."""
    parser = argparse.ArgumentParser(prog="python -m targetd_server.config")
    parser.add_argument("--write-readme", metavar="PATH")
    args = parser.parse_args(argv)
    if args.write_readme:
        path = Path(args.write_readme)
        path.write_text(with_settings_table(path.read_text()))
    else:
        print(settings_table())


if __name__ == "__main__":  # pragma: no cover
    main()
