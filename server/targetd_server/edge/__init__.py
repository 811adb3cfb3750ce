"""A local Adobe Target stand-in (``targetd edge``) for development and tests — never a production default.

It serves rules artifacts with ETag, ``/v1/geo`` from a table, and ``/rest/v1/delivery`` answered by
targetd's own engine, recording notifications in SQLite. See ``edge.server`` for the endpoints.
"""

from targetd_server.edge.server import EdgeServer, Fault
from targetd_server.edge.store import EdgeStore

__all__ = ["EdgeServer", "EdgeStore", "Fault"]
