"""Live events of one run, for Server-Sent Events: written by a worker thread, read by the loop.

    events = RunEvents()
    events.publish("status", {"status": "queued"})      # any thread
    async for name, data in events.follow():            # the event loop; from the start
        ...

Everything published is kept until the run ends, so a client that connects
late gets what was produced so far and then live events. Memory is bounded by
what is published: the executor only reports output within the run's caps.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["RunEvents", "sse_line"]


def sse_line(name: str, data: str) -> str:
    """One event in the text/event-stream format (``data`` is one JSON line)."""
    return f"event: {name}\ndata: {data}\n\n"


class RunEvents:
    """An append-only event log with async followers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[tuple[str, str]] = []
        self._closed = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def publish(self, name: str, payload: dict[str, Any]) -> None:
        self.publish_json(name, json.dumps(payload, ensure_ascii=True))

    def publish_json(self, name: str, data: str) -> None:
        """Publish a payload that is JSON text already (one line)."""
        with self._lock:
            if self._closed:
                return
            self._events.append((name, data))
            self._wake()

    def close(self) -> None:
        """No more events: followers finish once they have read everything."""
        with self._lock:
            self._closed = True
            self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:
                pass  # that loop is closed: its follower is gone

    async def follow(self) -> AsyncIterator[tuple[str, str]]:
        """Every event from the first, then live ones, until `close`."""
        position = 0
        loop = asyncio.get_running_loop()
        while True:
            wake = asyncio.Event()
            with self._lock:
                new = self._events[position:]
                closed = self._closed
                if not new and not closed:
                    self._waiters.append((loop, wake))
            for item in new:
                yield item
            position += len(new)
            if closed and not new:
                return
            if not new:
                await wake.wait()
