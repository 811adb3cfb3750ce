"""Python client for targetd."""
