"""The ``targetd`` command: ``targetd serve`` runs the service; ``targetd probe`` checks a running one's
gRPC health (for container health checks and orchestrator exec probes).

The local Target stand-in is not a subcommand: it is the development tool ``targetd-edge`` (tools/edge)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from targetd_server import __version__
from targetd_server.config import add_arguments, load_settings
from targetd_server.errors import ConfigError
from targetd_server.logs import configure_logging
from targetd_server.service import serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="targetd", description="gRPC decisioning service for Adobe Target")
    parser.add_argument("--version", action="version", version=f"targetd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gRPC service")
    add_arguments(serve)
    probe = commands.add_parser("probe", help="exit 0 when the service at --address reports SERVING")
    probe.add_argument("--address", default="127.0.0.1:50051", help="host:port of a running targetd")
    probe.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    return parser


def probe(address: str, timeout: float) -> int:
    """Check gRPC health: 0 when SERVING, 1 otherwise (message on stderr)."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError as error:
            print(f"targetd probe: {address}: {error.code().name}", file=sys.stderr)
            return 1
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        print(
            f"targetd probe: {address}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}",
            file=sys.stderr,
        )
        return 1
    return 0


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
            asyncio.run(serve(settings))
        except ConfigError as error:  # found while starting: an unreadable file, an unusable address
            print(f"targetd: configuration error: {error}", file=sys.stderr)
            return 2
        return 0
    if args.command == "probe":
        return probe(args.address, args.timeout)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
