"""A cell submitted to a session, as the HTTP layer waits on it (one node or a cluster).

handle = sessions.submit_cell(session_id, CellRequest(code="1 + 1"))
await wait_cell(handle)               # on the event loop, no thread held
handle.result                         # the CellResult (or handle.error)
async for name, data in handle.events.follow(): ...   # its live events
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ai_data_agent.errors import AiDataAgentError
from ai_data_agent.service.events import RunEvents
from ai_data_agent.session_models import CellResult

__all__ = ["CellHandle", "wait_cell"]


@dataclass
class CellHandle:
    """A cell submitted to a session: its number, live events, and the result when it ends."""

    session_id: str
    count: int
    events: RunEvents = field(default_factory=RunEvents)
    result: CellResult | None = None
    error: AiDataAgentError | None = None
    done: threading.Event = field(default_factory=threading.Event)
    callbacks: list[Callable[[], None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def finish(self) -> None:
        with self.lock:
            self.done.set()
            callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback()

    def on_done(self, callback: Callable[[], None]) -> None:
        with self.lock:
            if not self.done.is_set():
                self.callbacks.append(callback)
                return
        callback()


async def wait_cell(handle: CellHandle) -> None:
    """Wait on the event loop, without holding a thread, until the cell has ended."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    def wake() -> None:
        try:
            loop.call_soon_threadsafe(resolve)
        except RuntimeError:
            pass  # the loop is closed: nobody waits any more

    handle.on_done(wake)
    await future
