"""Progress notifications while code runs, and the cancel that stops it.

    outcome = await follow(job, report, total_s=timeout, grace_s=2.0, output=output)

`follow` waits for a `ToolJob`; every `EVERY_S` it reports the seconds elapsed
(of ``total_s``) and the last line of output so far through ``report`` (the
request's ``ctx.report_progress``, a no-op when the client sent no progress
token). When the wait is cancelled (the client cancelled the MCP request, or
closed its stream), the job is stopped: a cell is interrupted and, within the
grace period, its session is free again with its state kept.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from ai_data_agent.mcp.sandbox import ToolJob

__all__ = ["EVERY_S", "LiveOutput", "follow"]

T = TypeVar("T")
EVERY_S = 1.0
STOP_SLACK_S = 15.0  # beyond the grace period: the kill and the answer
LINE_CHARS = 200
Report = Callable[[float, float | None, str | None], Awaitable[None]]


class LiveOutput:
    """The last line a job printed (its sink is called on any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = ""

    def __call__(self, kind: str, text: str) -> None:
        lines = [line for line in text.splitlines() if line.strip()]
        if lines:
            with self._lock:
                self._last = lines[-1][:LINE_CHARS]

    @property
    def last_line(self) -> str:
        with self._lock:
            return self._last


async def _report_every(report: Report, total_s: float | None, output: LiveOutput) -> None:
    started = time.monotonic()
    while True:
        await anyio.sleep(EVERY_S)
        elapsed = round(time.monotonic() - started, 1)
        message = f"running {elapsed:.0f} s"
        if output.last_line:
            message += f": {output.last_line}"
        try:
            await report(elapsed, total_s, message)
        except Exception:  # a client gone deaf: the job goes on, unreported
            return


async def follow(
    job: ToolJob[T], report: Report, *, total_s: float | None, grace_s: float, output: LiveOutput
) -> T:
    """``job``'s outcome, with progress while it runs; a cancelled wait stops the job."""
    failure: Exception | None = None
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_report_every, report, total_s, output)
            try:
                outcome = await job.wait()
            except Exception as exc:  # raised below, not as an exception group
                failure = exc
            group.cancel_scope.cancel()
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True), anyio.move_on_after(grace_s + STOP_SLACK_S):
            await job.cancel()
            with contextlib.suppress(Exception):  # the outcome has nobody to go to
                await job.wait()
        raise
    if failure is not None:
        raise failure
    return outcome
