"""Progress of a run as it happens, for live output (CLI, SSE).

def on_event(event: RunEvent) -> None:
    if event.kind == "stdout":
        sys.stdout.write(event.data)

executor.run(request, on_event=on_event)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["EventHandler", "RunEvent"]


@dataclass(frozen=True)
class RunEvent:
    """``phase`` (installing, ready, running, collecting) or ``stdout``/``stderr`` text."""

    run_id: str
    kind: str
    data: str


EventHandler = Callable[[RunEvent], None]
