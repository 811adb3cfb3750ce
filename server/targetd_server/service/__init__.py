"""The gRPC layer: proto ↔ domain mapping, status codes, interceptors, health and reflection."""
