"""``targetd probe``: exit 0 when a running targetd's gRPC health check answers SERVING, 1 otherwise — for
container HEALTHCHECKs and exec probes, over plaintext, TLS or mTLS.

Each option also comes from the environment, so that a container configured for ``targetd serve`` probes
itself with no flags: ``--address`` (``TARGETD_PROBE_ADDRESS``), ``--tls-ca`` (``TARGETD_TLS_CA``: the CA
that signed the server's certificate), ``--tls-cert`` / ``--tls-key`` (``TARGETD_TLS_CERT`` /
``TARGETD_TLS_KEY``: the client certificate an mTLS server asks for; a server that asks for none ignores
it), ``--tls-server-name`` (``TARGETD_TLS_SERVER_NAME``: the name the certificate is checked against, when
the address is not in it, e.g. 127.0.0.1). TLS is used as soon as a CA or a certificate is given; without a
CA the system's roots verify the server.

Thread affinity: none (a blocking channel, closed before returning).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["add_probe_arguments", "probe"]

_ENV = {
    "address": "TARGETD_PROBE_ADDRESS",
    "tls_ca": "TARGETD_TLS_CA",
    "tls_cert": "TARGETD_TLS_CERT",
    "tls_key": "TARGETD_TLS_KEY",
    "tls_server_name": "TARGETD_TLS_SERVER_NAME",
}


def add_probe_arguments(parser: argparse.ArgumentParser) -> None:
    """The probe's flags (each with its environment fallback, read by :func:`probe`)."""
    parser.add_argument("--address", help="host:port of a running targetd (default 127.0.0.1:50051)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    parser.add_argument("--tls-ca", help="CA bundle (PEM) verifying the server; enables TLS")
    parser.add_argument("--tls-cert", help="client certificate (PEM) for mTLS; enables TLS")
    parser.add_argument("--tls-key", help="client private key (PEM) for mTLS")
    parser.add_argument("--tls-server-name", help="name to check the server certificate against")


def _option(args: argparse.Namespace, name: str) -> str | None:
    value = getattr(args, name, None)
    return value if value else os.environ.get(_ENV[name]) or None


def _channel(args: argparse.Namespace, address: str) -> grpc.Channel:
    ca, cert, key = (_option(args, name) for name in ("tls_ca", "tls_cert", "tls_key"))
    if not (ca or cert):
        return grpc.insecure_channel(address)
    if bool(cert) != bool(key):
        raise ValueError("--tls-cert and --tls-key go together")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=Path(ca).read_bytes() if ca else None,
        private_key=Path(key).read_bytes() if key else None,
        certificate_chain=Path(cert).read_bytes() if cert else None,
    )
    server_name = _option(args, "tls_server_name")
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return grpc.secure_channel(address, credentials, options=options)


def probe(args: argparse.Namespace) -> int:
    """Check gRPC health: 0 when SERVING, 1 otherwise, 2 for unusable options (message on stderr)."""
    address = _option(args, "address") or "127.0.0.1:50051"
    try:
        channel = _channel(args, address)
    except (OSError, ValueError) as error:
        print(f"targetd probe: {error}", file=sys.stderr)
        return 2
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=args.timeout
            )
        except grpc.RpcError as error:
            print(f"targetd probe: {address}: {error.code().name}", file=sys.stderr)
            return 1
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        print(f"targetd probe: {address}: {status}", file=sys.stderr)
        return 1
    return 0
