"""``targetd-edge``: run the local Target stand-in (development and tests only; see ``targetd_edge.server``).

Prints ``targetd edge listening on HOST:PORT`` on stdout once bound (``--listen 127.0.0.1:0`` picks a
free port), and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from targetd_edge.server import EdgeServer
from targetd_edge.store import EdgeStore
from targetd_server.logs import configure_logging

log = logging.getLogger("targetd.edge")

BANNER = (
    "targetd edge: LOCAL STAND-IN for Adobe Target (development and tests only; never point production at it)"
)


def build_parser() -> argparse.ArgumentParser:
    """The ``targetd-edge`` command line."""
    parser = argparse.ArgumentParser(
        prog="targetd-edge",
        description="a LOCAL STAND-IN for Adobe Target (development and tests only; docs/remote.md)",
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``targetd-edge`` flags."""
    parser.add_argument("--listen", default="127.0.0.1:8087", help="host:port (port 0: any free port)")
    parser.add_argument(
        "--root", default="deploy/sample", help="directory of {client}/{environment}/v1/[token/]rules.json"
    )
    parser.add_argument("--client", default=None, help="client code to decide for (default: the only one)")
    parser.add_argument("--environment", default="production", help="artifact environment to decide with")
    parser.add_argument("--geo", default=None, help="JSON file: {ip: {x-geo-*: ...}, 'default': {...}}")
    parser.add_argument("--cluster", default=None, help="edge cluster to report (edgeHost mboxedge{N})")
    parser.add_argument(
        "--data-dir", default=".targetd-data/edge", help="directory of its notifications.sqlite3"
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code."""
    host, _, port = args.listen.rpartition(":")
    geo: dict[str, Any] = {}
    if args.geo:
        geo = json.loads(Path(args.geo).read_text())
    elif (Path(args.root) / "geo.json").is_file():
        geo = json.loads((Path(args.root) / "geo.json").read_text())
    store = EdgeStore(Path(args.data_dir) / "notifications.sqlite3")
    server = EdgeServer(
        (host or "127.0.0.1", int(port)),
        root=Path(args.root),
        store=store,
        client=args.client,
        environment=args.environment.lower(),
        geo_table=geo,
        cluster=args.cluster,
    )
    print(BANNER, file=sys.stderr, flush=True)
    print(f"targetd edge listening on {host or '127.0.0.1'}:{server.port}", flush=True)
    log.warning("%s; client %s, artifacts from %s", BANNER, server.client, server.root)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="targetd-edge", daemon=True)
    thread.start()
    stop.wait()
    server.shutdown()
    server.server_close()
    store.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The ``targetd-edge`` console script: parse the flags, log as text, serve until stopped."""
    args = build_parser().parse_args(argv)
    configure_logging("info", "text")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
