"""A cap on request bodies, enforced before any route reads them.

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes,
                       discard_bytes=settings.body_discard_max_bytes,
                       discard_s=settings.body_discard_timeout_s)

A declared ``Content-Length`` over the cap gets ``413`` at once, without
reading. Otherwise the body is read here, counting as it arrives (chunked
uploads included), and ``413`` is sent as soon as the count passes the cap;
a body within the cap is replayed to the app unchanged. The app would buffer
the whole body anyway, so reading it here costs no extra memory beyond the cap,
and this ``413`` is the only answer the daemon gives before a body has ended.

After the ``413`` the connection closes, but not at once. Most clients (urllib,
http.client) send the whole body before they read a byte of the answer, and a
socket closed with unread data answers them with a reset that throws the
``413`` away. So, as nginx's lingering close does, the rest of the body is read
and discarded first: at most ``discard_bytes``, for at most ``discard_s``, and
no longer than `LINGER_IDLE_S` without a byte. A body declared longer than
that is not waited for. The answer is sent before the discarding starts, so a
client that reads while it sends (curl) sees it at once and stops sending.
"""

from __future__ import annotations

import time
from typing import Literal

import anyio
from loguru import logger
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ai_data_agent.errors import RequestTooLarge
from ai_data_agent.service.http_errors import error_response

__all__ = ["LINGER_IDLE_S", "BodyLimitMiddleware", "discard_rest"]

LINGER_IDLE_S = 5.0  # as nginx's lingering_timeout
Ending = Literal["ended", "client gone", "byte bound", "time bound", "idle"]


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


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server rejects a malformed length before we run
    return None


class BodyLimitMiddleware:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, discard_bytes: int = 0, discard_s: float = 0.0
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.discard_bytes = discard_bytes
        self.discard_s = discard_s

    async def _too_large(self, receive: Receive, send: Send, *, left: int | None) -> None:
        """Answer 413; linger over the ``left`` bytes still to come (None: unknown) if in bounds."""
        error = RequestTooLarge("body", f"larger than {self.max_bytes} bytes")
        response = error_response(error, headers={"Connection": "close"})
        linger = left != 0 and (left is None or left <= self.discard_bytes)
        linger = linger and self.discard_s > 0
        status, headers = response.status_code, response.raw_headers
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body, "more_body": linger})
        if not linger:
            return  # nothing left, or more than we would read: the server closes now
        started = time.monotonic()
        discarded, ending = await discard_rest(receive, self.discard_bytes, self.discard_s)
        logger.info(
            "413: discarded {} more bytes of the body in {:.2f} s ({}), closing",
            discarded,
            time.monotonic() - started,
            ending,
        )
        # Completing the answer closes the connection (Connection: close).
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._too_large(receive, send, left=declared)
            return
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
            more = message.get("more_body", False)
            if size > self.max_bytes:  # so no Content-Length: how much is left is unknown
                chunks.clear()
                await self._too_large(receive, send, left=None if more else 0)
                return
            chunks.append(body)
            if not more:
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay(whole, receive), send)


def _replay(first: Message, receive: Receive) -> Receive:
    """A receive() that gives ``first``, then whatever the real one gives (a disconnect)."""
    pending: list[Message] = [first]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
