"""A cap on request bodies, enforced before any route reads them.

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)

A declared ``Content-Length`` over the cap gets ``413`` at once, without
reading. Otherwise the body is read here, counting as it arrives (chunked
uploads included), and ``413`` is sent as soon as the count passes the cap;
a body within the cap is replayed to the app unchanged. The app would buffer
the whole body anyway, so reading it here costs no extra memory beyond the cap.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ai_data_agent.errors import RequestTooLarge
from ai_data_agent.service.http_errors import error_response

__all__ = ["BodyLimitMiddleware"]


class BodyLimitMiddleware:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = RequestTooLarge("body", f"larger than {self.max_bytes} bytes")
        # Close the connection: the rest of the body is not worth reading.
        response = error_response(error, headers={"Connection": "close"})
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._too_large(scope, receive, send)
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
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
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
