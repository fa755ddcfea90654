"""An API node's internal routes: the cluster's blobs, read and written by its workers.

    server = BlobServer(LocalBlobStore(settings.storage_root), max_bytes=settings.blob_max_bytes)
    install_blob_routes(app, server)
    server.secret = nodes.secret()          # read from the database at the node's start

    GET, HEAD /internal/blobs/{digest}      the blob (HTTP Range), 404 when there is none
    PUT       /internal/blobs/{digest}      its bytes, with Content-Length: 201 {digest, size};
                                            400 when they do not hash to {digest}

Only nodes of the cluster may call them: every request carries the cluster's
node secret (`storage.blob_wire.NODE_AUTH_HEADER`), made once by the schema's
migration and read from the database by every node (whoever can read the
database is trusted already), compared in constant time and never logged. The
``Authorization`` header is not looked at: no tenant's bearer token opens these
routes, and a sandbox, which never sees the database, cannot learn the secret.
They are left out of the OpenAPI document. A PUT is streamed into the store's
writer, hashed as it arrives and capped by its Content-Length (itself within
``blob_max_bytes``, also enforced by `body_limit`); a body that ends early or
hashes to another digest is refused and nothing is kept.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, cast

from anyio.to_thread import run_sync
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from loguru import logger
from starlette.requests import ClientDisconnect

from ai_data_agent.errors import NotFound, NotReady, RequestRejected, RequestTooLarge, Unauthorized
from ai_data_agent.storage import BlobRef, BlobStore
from ai_data_agent.storage.blob_wire import BLOBS_ROUTE, CHUNK, NODE_AUTH_HEADER
from ai_data_agent.storage.blobs import is_digest

__all__ = ["BlobServer", "install_blob_routes"]


class BlobServer:
    """What the routes serve (the node's own store) and the secret they require."""

    def __init__(self, store: BlobStore, *, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.secret: str | None = None

    def verify(self, presented: str | None) -> None:
        """Raises:
        NotReady: the node has not read the secret yet (it is starting).
        Unauthorized: the secret is missing or wrong."""
        if self.secret is None:
            raise NotReady("this API node has not read the cluster's node secret yet")
        # Both sides hashed first: compare_digest then takes the same time whatever the length.
        if not hmac.compare_digest(_hash(presented or ""), _hash(self.secret)):
            raise Unauthorized(
                "an internal route of the cluster: the node secret is missing or wrong"
            )


def _hash(text: str) -> bytes:
    return hmac.digest(b"ai-data-agent node secret", text.encode(), "sha256")


async def _server(request: Request) -> BlobServer:
    server = cast(BlobServer, request.app.state.blob_server)
    server.verify(request.headers.get(NODE_AUTH_HEADER))
    return server


ServerDep = Annotated[BlobServer, Depends(_server)]
router = APIRouter(prefix=BLOBS_ROUTE, include_in_schema=False)


@router.api_route("/{digest}", methods=["GET", "HEAD"])
async def read_blob(digest: str, server: ServerDep) -> FileResponse:
    path = await run_sync(server.store.path, digest)  # None for a name that is no digest
    if path is None:
        raise NotFound(f"no blob {digest[:12]}")
    response = FileResponse(path, media_type="application/octet-stream")
    response.chunk_size = CHUNK  # one thread hop per MiB read, not per 64 KiB
    return response


@router.put("/{digest}")
async def write_blob(digest: str, request: Request, server: ServerDep) -> JSONResponse:
    if not is_digest(digest):
        raise RequestRejected("digest", "not a sha256 in lower-case hex")
    declared = _content_length(request, server.max_bytes)
    blob = await _receive(request, server.store, digest, declared)
    logger.info("blob {} ({} bytes) written by a worker", blob.digest[:12], blob.size)
    return JSONResponse({"digest": blob.digest, "size": blob.size}, status_code=201)


def _content_length(request: Request, cap: int) -> int:
    try:
        declared = int(request.headers["content-length"])
    except (KeyError, ValueError) as exc:
        raise RequestRejected("Content-Length", "required: the blob's size in bytes") from exc
    if declared > cap:
        raise RequestTooLarge("body", f"larger than {cap} bytes (blob_max_bytes)")
    return declared


async def _receive(request: Request, store: BlobStore, digest: str, declared: int) -> BlobRef:
    writer = await run_sync(partial(store.writer, max_bytes=declared, what=f"blob {digest[:12]}"))
    with writer:  # discarded on the way out unless committed
        try:
            async for chunk in _batched(request.stream()):
                await run_sync(writer.write, chunk)
        except ClientDisconnect as exc:
            raise RequestRejected(
                "body", f"the connection closed after {writer.size} bytes"
            ) from exc
        if writer.size != declared:
            raise RequestRejected("body", f"ended after {writer.size} of {declared} bytes")
        if writer.digest != digest:
            raise RequestRejected(
                "digest", f"the body hashes to {writer.digest}, not {digest}: nothing was kept"
            )
        return await run_sync(writer.commit)


async def _batched(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The body in pieces of about `CHUNK` bytes: one thread hop per piece, not per packet."""
    pending = bytearray()
    async for chunk in chunks:
        pending += chunk
        if len(pending) >= CHUNK:
            yield bytes(pending)
            pending.clear()
    if pending:
        yield bytes(pending)


def install_blob_routes(app: FastAPI, server: BlobServer) -> None:
    """Serve ``server`` on ``app`` under `BLOBS_ROUTE`."""
    app.state.blob_server = server
    app.include_router(router)
