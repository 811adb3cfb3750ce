"""Shared test fixtures and helpers."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The shared folder sits beside the checkout (CI clones the repo next to it); never copied into the repo.
SHARED = REPO.parent / "shared"
CONFORMANCE = SHARED / "conformance"
OPENAPI = SHARED / "reference" / "target-openapi"

# The loopback-only network guard (tests/netguard/sitecustomize.py): active in this process now and, through
# PYTHONPATH, in every Python child process the tests start.
_NETGUARD = str(Path(__file__).resolve().parent / "netguard")
if _NETGUARD not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_NETGUARD, os.environ.get("PYTHONPATH")) if p)
if _NETGUARD not in sys.path:
    sys.path.insert(0, _NETGUARD)
importlib.import_module("sitecustomize")  # installs the guard here (idempotent)
