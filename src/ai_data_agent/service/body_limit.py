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
the route that reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ai_data_agent.errors import RequestTooLarge
from ai_data_agent.paths import MAX_PATH_LENGTH
from ai_data_agent.service.http_errors import error_response
from ai_data_agent.settings import Settings

__all__ = ["MULTIPART_PART_OVERHEAD", "BodyCaps", "BodyLimitMiddleware"]

# Per file part: boundary, Content-Disposition with the (percent-encoded) filename
# and Content-Type lines.
MULTIPART_PART_OVERHEAD = 3 * MAX_PATH_LENGTH + 512


@dataclass(frozen=True)
class BodyCaps:
    """Body caps in bytes: JSON and the rest, multipart uploads, raw file uploads."""

    default: int
    multipart: int
    octet_stream: int

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
        )

    def for_type(self, content_type: bytes) -> tuple[int, bool]:
        """The cap for a body of ``content_type``, and whether it streams through."""
        media_type = content_type.partition(b";")[0].strip().lower()
        if media_type == b"multipart/form-data":
            return self.multipart, True
        if media_type == b"application/octet-stream":
            return self.octet_stream, True
        return self.default, False


def _too_large_message(limit: int, streamed: bool) -> str:
    if streamed:
        return f"larger than {limit} bytes (the cap follows the input file caps)"
    return (
        f"larger than {limit} bytes; send large input files as multipart/form-data, "
        "where the input file caps apply instead"
    )


class BodyLimitMiddleware:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, caps: BodyCaps) -> None:
        self.app = app
        self.caps = caps

    async def _too_large(
        self, scope: Scope, receive: Receive, send: Send, limit: int, streamed: bool
    ) -> None:
        error = RequestTooLarge("body", _too_large_message(limit, streamed))
        # Close the connection: the rest of the body is not worth reading.
        response = error_response(error, headers={"Connection": "close"})
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type = b""
        declared = 0
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
            elif name == b"content-type":
                content_type = value
        limit, streamed = self.caps.for_type(content_type)
        if declared > limit:
            await self._too_large(scope, receive, send, limit, streamed)
        elif streamed:
            await self.app(scope, _counted(receive, limit), send)
        else:
            await self._buffered(scope, receive, send, limit)

    async def _buffered(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away mid-body: the app sees that, as it would have.
                await self.app(scope, _replay(message, receive), send)
                return
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await self._too_large(scope, receive, send, limit, False)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay(whole, receive), send)


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
