"""The ``targetd`` command: ``targetd serve`` runs the service."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from targetd_server import __version__
from targetd_server.config import add_arguments, load_settings
from targetd_server.errors import ConfigError
from targetd_server.logs import configure_logging
from targetd_server.service.server import serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="targetd", description="gRPC decisioning service for Adobe Target")
    parser.add_argument("--version", action="version", version=f"targetd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gRPC service")
    add_arguments(serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        try:
            settings = load_settings(args)
        except ConfigError as error:
            print(f"targetd: configuration error: {error}", file=sys.stderr)
            return 2
        configure_logging(settings.log_level, settings.log_format)
        asyncio.run(serve(settings))
        return 0
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
