"""The ``targetd`` command: ``targetd serve`` runs the service (``--workers N``: N worker processes under a
supervisor, ``targetd_server.workers``); ``targetd probe`` checks a running one's gRPC health (for
container health checks and orchestrator exec probes; TLS options in ``targetd_server.probe``);
``targetd outbox stats|list|requeue`` looks into the notification outbox (``targetd_server.outbox_cli``).

The local Target stand-in is not a subcommand: it is the development tool ``targetd-edge`` (tools/edge)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from targetd_server import __version__
from targetd_server.config import add_arguments, load_settings
from targetd_server.errors import ConfigError, ListenError
from targetd_server.logs import configure_logging
from targetd_server.outbox_cli import add_outbox_arguments, run_outbox
from targetd_server.probe import add_probe_arguments, probe
from targetd_server.service import serve
from targetd_server.workers import run as run_workers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="targetd", description="gRPC decisioning service for Adobe Target")
    parser.add_argument("--version", action="version", version=f"targetd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gRPC service")
    add_arguments(serve)
    probe = commands.add_parser("probe", help="exit 0 when the service at --address reports SERVING")
    add_probe_arguments(probe)
    outbox = commands.add_parser("outbox", help="the notification outbox: stats, list and requeue quarantine")
    add_outbox_arguments(outbox)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        try:
            settings = load_settings(args)
        except ConfigError as error:
            print(f"targetd: configuration error: {error}", file=sys.stderr)
            return 2
        try:
            configure_logging(settings.log_level, settings.log_format)
            if settings.workers > 1:
                return run_workers(settings)
            asyncio.run(serve(settings))
        except ListenError as error:  # "cannot listen on HOST:PORT: address in use"
            print(f"targetd: {error}", file=sys.stderr)
            return 1
        except ConfigError as error:  # found while starting: an unreadable file, an unusable address
            print(f"targetd: configuration error: {error}", file=sys.stderr)
            return 2
        return 0
    if args.command == "probe":
        return probe(args)
    if args.command == "outbox":
        return run_outbox(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
