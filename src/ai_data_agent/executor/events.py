"""Progress of a run or a cell as it happens, for live output (CLI, SSE).

    def on_event(event: RunEvent) -> None:
        if event.kind == "stdout":
            sys.stdout.write(event.data)

    executor.run(request, on_event=on_event)

Inside the executor an `Emitter` sends one run's (or one session's) events to
its handler, when there is one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Emitter", "EventHandler", "RunEvent"]


@dataclass(frozen=True)
class RunEvent:
    """``phase`` (installing, ready, running, collecting) or ``stdout``/``stderr`` text."""

    run_id: str
    kind: str
    data: str


EventHandler = Callable[[RunEvent], None]


@dataclass(frozen=True)
class Emitter:
    """``emit(kind, data)``: one `RunEvent` of ``run_id`` to ``handler`` (none: nothing)."""

    run_id: str
    handler: EventHandler | None = None

    def __call__(self, kind: str, data: str) -> None:
        if self.handler is not None:
            self.handler(RunEvent(self.run_id, kind, data))
