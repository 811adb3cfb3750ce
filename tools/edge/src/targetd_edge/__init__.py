"""A local Adobe Target stand-in (``targetd-edge``) for development and tests — never a production default.

It serves rules artifacts with ETag, ``/v1/geo`` from a table, and ``/rest/v1/delivery`` answered by
targetd's own engine, recording notifications in SQLite. See ``targetd_edge.server`` for the endpoints.

A development tool in a distribution of its own (``targetd-edge``, ``tools/edge``): it depends on the
server's engine, and no server module imports it; the production wheel and the Docker image leave it out.
"""

from targetd_edge.server import EdgeServer, Fault
from targetd_edge.store import EdgeStore

__all__ = ["EdgeServer", "EdgeStore", "Fault"]
