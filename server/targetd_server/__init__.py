"""targetd: a gRPC decisioning microservice that speaks Adobe Target (the server)."""

__version__ = "0.1.0"
