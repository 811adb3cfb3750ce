"""Shared test fixtures and helpers."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The shared folder sits beside the checkout (CI clones the repo next to it); never copied into the repo.
SHARED = REPO.parent / "shared"
CONFORMANCE = SHARED / "conformance"
OPENAPI = SHARED / "reference" / "target-openapi"
