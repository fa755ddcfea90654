"""What a request waits on while its run or cell executes: on one node or anywhere in a cluster.

    handle = node.dispatcher.submit(request, limits)    # a RunHandle
    handle = node.sessions.submit_cell(session_id, cell) # a CellHandle
    async for name, data in handle.events.follow(): ...  # live events, from the first
    await wait_done(handle)                              # on the event loop, no thread held
    handle.result                                        # a RunResult, or a CellResult

Both kinds are a `Completion`: done exactly once, by whichever thread ends the
work (a worker thread, a follower of the database), with callbacks for those
who wait. The outcome is set in the same step that marks the handle done, so
a waiter that wakes always finds it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from ai_data_agent.errors import AiDataAgentError
from ai_data_agent.models import RunResult
from ai_data_agent.service.events import RunEvents
from ai_data_agent.session_models import CellResult

__all__ = ["CellHandle", "Completion", "RunHandle", "wait_done"]


class Completion:
    """Done once, with callbacks on any thread; see the module docstring."""

    def __init__(self) -> None:
        self.events = RunEvents()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._callbacks: list[Callable[[], None]] = []

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on some thread) once done: at once if it is already."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def wait(self, timeout: float | None = None) -> bool:
        """Block (a worker thread, never the loop) until done; False on timeout."""
        return self._done.wait(timeout)

    def _complete(self, settle: Callable[[], None]) -> None:
        """Run ``settle`` (it sets the outcome) and mark done, unless done already."""
        with self._lock:
            if self._done.is_set():
                return
            settle()
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()


async def wait_done(handle: Completion) -> None:
    """Wait on the event loop, without holding a thread, until ``handle`` is done."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    def notify() -> None:
        try:
            loop.call_soon_threadsafe(resolve)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    handle.add_done_callback(notify)
    await future


class RunHandle(Completion):
    """An active run: its live events, then its final `RunResult` (None if no one finished it)."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.id = run_id
        self.result: RunResult | None = None

    def set_done(self, result: RunResult | None = None) -> None:
        """The terminal record is written: wake the waiters (the first call counts)."""

        def settle() -> None:
            self.result = result

        self._complete(settle)


class CellHandle(Completion):
    """A cell submitted to a session: its number, live events, and its result or error."""

    def __init__(self, session_id: str, count: int, code: str | None = None) -> None:
        super().__init__()
        self.session_id = session_id
        self.count = count
        self.code = code  # what runs (None where the handle's maker does not know it)
        self.result: CellResult | None = None
        self.error: AiDataAgentError | None = None

    def set_done(
        self, result: CellResult | None = None, error: AiDataAgentError | None = None
    ) -> None:
        """The cell ended with ``result``, or with ``error`` (the first call counts)."""

        def settle() -> None:
            self.result, self.error = result, error

        self._complete(settle)
