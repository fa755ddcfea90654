"""How a cluster's API nodes serve its blobs to workers: the route, the secret's header.

Shared by both sides (`storage.remote` on a worker, ``service/cluster/blob_routes.py``
on an API node) and by the body caps (``service/body_limit.py``), without importing
either: a one-node daemon never loads the HTTP client (``httpx``, which brings its
command line's ``rich``, ``click`` and ``pygments`` when they are installed: about
5 MB of memory).
"""

__all__ = ["BLOBS_ROUTE", "CHUNK", "NODE_AUTH_HEADER"]

BLOBS_ROUTE = "/internal/blobs"  # + /{digest}: GET (Range), HEAD, PUT
NODE_AUTH_HEADER = "X-Ai-Data-Agent-Node-Secret"
CHUNK = 1024 * 1024  # bytes per read or write of a blob's transfer
