"""targetd: a gRPC decisioning microservice that speaks Adobe Target (the server)."""

from targetd_server.logs import quiet_grpc_core

__version__ = "0.1.0"

quiet_grpc_core()  # before anything imports grpc (targetd_server.logs)
