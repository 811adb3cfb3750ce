"""The Delivery API JSON mapping, under the client's name: see :mod:`targetd.json_format`.

The mapping lives beside the generated ``targetd.v1`` messages in the ``targetd-api`` distribution (and
imports no grpc), so that the server's pure engine can use it too; this module keeps it importable from the
client package.
"""

from targetd.json_format import JsonMappingError, message_to_dict, parse_dict

__all__ = ["JsonMappingError", "message_to_dict", "parse_dict"]
