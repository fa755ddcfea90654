"""Caps on request bodies, enforced before any route reads them.

    app.add_middleware(BodyLimitMiddleware, caps=BodyCaps.of(settings))

A JSON (or any other) body is capped at ``max_bytes``: a declared
``Content-Length`` over it gets ``413`` at once, without reading; otherwise the
body is read here, counting as it arrives (chunked uploads included), ``413``
is sent as soon as the count passes the cap, and a body within it is replayed
to the app unchanged (the app would buffer it anyway).

Bodies that carry files as raw bytes have caps that follow the input file
caps, so that whatever those allow fits: ``multipart/form-data`` (a run's
request part plus its input files) and ``application/octet-stream`` (one
session file). They are not buffered here (the form parser spools files to
disk); they stream through, counted, and reading past the cap raises a 413 in
the route that reads them. So do the blobs a cluster's workers upload to an API
node (`storage.blob_wire.BLOBS_ROUTE`), within ``blob_max_bytes``.

An answer sent while the body is still arriving (those 413s, or a route's early
error) closes the connection, but not at once. Most clients (urllib,
http.client) send the whole body before they read a byte of the answer, and a
socket closed with unread data answers them with a reset that throws the
answer away. So, as nginx's lingering close does, the rest of the body is read
and discarded first: at most ``discard_bytes``, for at most ``discard_s``, and
no longer than `LINGER_IDLE_S` without a byte; a body declared longer than
that is not waited for. The answer goes out before the discarding starts, so a
client that reads while it sends (curl) sees it at once and stops sending.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Literal

import anyio
from loguru import logger
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ai_data_agent.errors import RequestTooLarge
from ai_data_agent.paths import MAX_PATH_LENGTH
from ai_data_agent.service.http_errors import error_response
from ai_data_agent.settings import Settings
from ai_data_agent.storage.blob_wire import BLOBS_ROUTE

__all__ = [
    "LINGER_IDLE_S",
    "MULTIPART_PART_OVERHEAD",
    "BodyCaps",
    "BodyLimitMiddleware",
    "discard_rest",
]

# Per file part: boundary, Content-Disposition with the (percent-encoded) filename
# and Content-Type lines.
MULTIPART_PART_OVERHEAD = 3 * MAX_PATH_LENGTH + 512
LINGER_IDLE_S = 5.0  # as nginx's lingering_timeout
SESSION_FILE = re.compile(r"^/v1/sessions/[^/]+/files/.")  # PUT: one file, its raw bytes
DATASET_UPLOAD = re.compile(r"^/v1/datasets/[^/]+/versions$")  # POST: a dataset version
Ending = Literal["ended", "client gone", "byte bound", "time bound", "idle"]


@dataclass(frozen=True)
class BodyCaps:
    """Body caps in bytes: JSON and the rest, multipart uploads, raw file uploads, blobs
    from workers; and the bounds of the discarding after an early answer (none by default)."""

    default: int
    multipart: int
    octet_stream: int
    blob: int = 0
    discard_bytes: int = 0
    discard_s: float = 0.0
    dataset: int = 0  # a dataset upload (any content type): a version and its headers

    @classmethod
    def of(cls, settings: Settings) -> BodyCaps:
        """``max_body_bytes``; for multipart, that (the request part) plus every input
        file the file caps allow, with their part headers; for one raw file, the
        larger of ``max_body_bytes`` and the per-file cap."""
        files = settings.max_input_total_bytes + settings.max_input_files * MULTIPART_PART_OVERHEAD
        return cls(
            default=settings.max_body_bytes,
            multipart=settings.max_body_bytes + files,
            octet_stream=max(settings.max_body_bytes, settings.max_input_file_bytes),
            blob=settings.blob_max_bytes,
            discard_bytes=settings.body_discard_max_bytes,
            discard_s=settings.body_discard_timeout_s,
            dataset=settings.dataset_max_version_bytes
            + settings.dataset_max_files * 2 * MULTIPART_PART_OVERHEAD,
        )

    def for_type(self, content_type: bytes) -> tuple[int, bool]:
        """The cap for a body of ``content_type``, and whether it streams through."""
        media_type = content_type.partition(b";")[0].strip().lower()
        if media_type == b"multipart/form-data":
            return self.multipart, True
        if media_type == b"application/octet-stream":
            return self.octet_stream, True
        return self.default, False


def _too_large_message(limit: int, streamed: bool, *, session_file: bool = False) -> str:
    """What the 413 says: the cap, and for a body past the JSON cap, how to send a large
    file on its route instead (a session's file, or a run's input files)."""
    if streamed:
        return f"larger than {limit} bytes (the cap follows the input file caps)"
    if session_file:
        return (
            f"larger than {limit} bytes; send the file's bytes with Content-Type: "
            "application/octet-stream, where the input file cap applies instead"
        )
    return (
        f"larger than {limit} bytes; send large input files as multipart/form-data, "
        "where the input file caps apply instead"
    )


async def discard_rest(receive: Receive, max_bytes: int, timeout_s: float) -> tuple[int, Ending]:
    """Read and drop the rest of a request body, within the bounds; bytes dropped and why it ended.

    Ends at the body's end, at a disconnect, past ``max_bytes``, after
    ``timeout_s`` in all, or after `LINGER_IDLE_S` without a message.
    """
    discarded = 0
    deadline = anyio.current_time() + timeout_s
    while True:
        wait = min(LINGER_IDLE_S, deadline - anyio.current_time())
        if wait <= 0:
            return discarded, "time bound"
        with anyio.move_on_after(wait) as scope:
            message = await receive()
        if scope.cancelled_caught:
            return discarded, "idle" if wait == LINGER_IDLE_S else "time bound"
        if message["type"] != "http.request":
            return discarded, "client gone"
        discarded += len(message.get("body", b""))
        if not message.get("more_body", False):
            return discarded, "ended"
        if discarded > max_bytes:
            return discarded, "byte bound"


class _Lingering:
    """One request's receive and send: an answer completed before the body ended waits,
    within the caps' bounds, while the rest of the body is read and dropped."""

    def __init__(
        self, receive: Receive, send: Send, caps: BodyCaps, declared: int | None, ended: bool
    ) -> None:
        self._receive = receive
        self._send = send
        self.caps = caps
        self.declared = declared  # Content-Length, if any
        self.ended = ended
        self.received = 0

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.ended = True
        self.received += len(message.get("body", b""))
        return message

    def _worth_waiting(self) -> bool:
        left = None if self.declared is None else self.declared - self.received
        return self.caps.discard_s > 0 and (left is None or left <= self.caps.discard_bytes)

    async def send(self, message: Message) -> None:
        if self.ended:
            await self._send(message)
        elif message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if not any(name.lower() == b"connection" for name, _ in headers):
                headers.append((b"connection", b"close"))  # the rest is not read after this
            await self._send({**message, "headers": headers})
        elif message["type"] != "http.response.body" or message.get("more_body", False):
            await self._send(message)
        elif not self._worth_waiting():
            await self._send(message)  # the server closes at once
        else:
            await self._send({**message, "more_body": True})
            started = time.monotonic()
            caps = self.caps
            discarded, ending = await discard_rest(
                self._receive, caps.discard_bytes, caps.discard_s
            )
            logger.info(
                "answered before the body ended: discarded {} more bytes in {:.2f} s ({}), closing",
                discarded,
                time.monotonic() - started,
                ending,
            )
            # Completing the answer closes the connection (Connection: close).
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})


class BodyLimitMiddleware:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, caps: BodyCaps) -> None:
        self.app = app
        self.caps = caps

    async def _too_large(
        self, scope: Scope, request: _Lingering, limit: int, streamed: bool
    ) -> None:
        session_file = scope["method"] == "PUT" and bool(SESSION_FILE.match(scope["path"]))
        message = _too_large_message(limit, streamed, session_file=session_file)
        if scope["path"].startswith(BLOBS_ROUTE):
            message = f"larger than {limit} bytes (blob_max_bytes)"
        error = RequestTooLarge("body", message)
        response = error_response(error, headers={"Connection": "close"})
        await response(scope, request.receive, request.send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type = b""
        declared: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None  # the server refuses a malformed length before we run
            elif name == b"content-type":
                content_type = value
            elif name == b"transfer-encoding":
                chunked = True
        has_body = chunked or (declared or 0) > 0
        request = _Lingering(receive, send, self.caps, declared, ended=not has_body)
        limit, streamed = self.caps.for_type(content_type)
        if scope["method"] == "POST" and DATASET_UPLOAD.match(scope["path"]):
            limit, streamed = self.caps.dataset, True  # streamed into storage as it arrives
        elif scope["path"].startswith(BLOBS_ROUTE):
            limit, streamed = self.caps.blob, True
        if (declared or 0) > limit:
            await self._too_large(scope, request, limit, streamed)
        elif streamed:
            await self.app(scope, _counted(request.receive, limit), request.send)
        else:
            await self._buffered(scope, request, limit)

    async def _buffered(self, scope: Scope, request: _Lingering, limit: int) -> None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await request.receive()
            if message["type"] != "http.request":
                # The client went away mid-body: the app sees that, as it would have.
                await self.app(scope, _replay(message, request.receive), request.send)
                return
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                chunks.clear()
                await self._too_large(scope, request, limit, False)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay(whole, request.receive), request.send)


def _counted(receive: Receive, limit: int) -> Receive:
    """A receive() that raises a 413 once more than ``limit`` body bytes came through.

    An HTTPException, not `RequestTooLarge`: FastAPI passes those through its own
    body parsing unchanged, and `http_errors` answers them ``payload_too_large``.
    """
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise HTTPException(413, f"body: {_too_large_message(limit, True)}")
        return message

    return counted


def _replay(first: Message, receive: Receive) -> Receive:
    """A receive() that gives ``first``, then whatever the real one gives (a disconnect)."""
    pending: list[Message] = [first]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
