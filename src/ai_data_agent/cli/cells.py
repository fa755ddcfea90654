"""A cell from the command line: run so that Ctrl-C interrupts it, and printed as it ends.

    outcome = run_interruptible(lambda: session.run(code, on_output=show_output),
                                session.interrupt)
    print_cell(outcome.cell, images=None)        # what the output did not show already

The cell runs on a thread of its own while the main thread waits with the stop
signals noted rather than raised (`ai_data_agent.cli.stopping.noting`), so that
Ctrl-C never lands in the middle of the session's exchange: it asks the session
to interrupt the cell, as Jupyter does, and the wait goes on for the cell's
result (a ``KeyboardInterrupt`` in the cell, its state preserved). Used by
``session run`` and ``repl``, locally and on a daemon.
"""

from __future__ import annotations

import base64
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ai_data_agent.cli.common import err_console, out_console
from ai_data_agent.cli.stopping import STOP_SIGNALS, Stopped, noting
from ai_data_agent.errors import AiDataAgentError
from ai_data_agent.session_models import CellResult, DisplayOutput

__all__ = ["Outcome", "print_cell", "run_interruptible", "show_output"]

RETRY_S = 0.1  # an interrupt that found no cell yet (it was starting) is sent again after this
TICK_S = 0.2  # how soon a signal is seen: the wait for the cell looks at the signals this often


@dataclass
class Outcome:
    """How an interruptible cell ended.

    Attributes:
        cell: its result; None when it did not end within the patience after an interrupt.
        stop: the first stop signal (Ctrl-C is SIGINT) that arrived while it ran, if any.
    """

    cell: CellResult | None
    stop: Stopped | None = None


class _Cell:
    """``run()`` on a daemon thread; its result or its exception."""

    def __init__(self, run: Callable[[], CellResult]) -> None:
        self.done = threading.Event()
        self.result: CellResult | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, args=(run,), name="cell", daemon=True)

    def _work(self, run: Callable[[], CellResult]) -> None:
        try:
            self.result = run()
        except BaseException as exc:  # handed to the waiting thread, which raises it
            self.error = exc
        finally:
            self.done.set()

    def value(self) -> CellResult:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def run_interruptible(
    run: Callable[[], CellResult],
    interrupt: Callable[[], bool],
    *,
    patience_s: float | None = None,
    notice: str = "interrupting the cell",
) -> Outcome:
    """``run()`` a cell; each stop signal while it runs (Ctrl-C, SIGTERM, SIGHUP) says
    ``notice`` and calls ``interrupt()`` (True when a cell got it), and the wait goes
    on, for ``patience_s`` at most after the first (None: for as long as it takes).
    Call from the main thread.

    Raises:
        AiDataAgentError: what ``run`` raised (the session busy, gone, ...).
    """
    cell = _Cell(run)
    with noting(STOP_SIGNALS) as noted:
        cell.thread.start()
        seen = 0
        pending = False  # an interrupt is to be sent
        deadline: float | None = None
        while not cell.done.wait(RETRY_S if pending else TICK_S):
            if len(noted) > seen:
                seen = len(noted)
                err_console.print(f"\n{notice}", style="yellow", highlight=False)
                pending = True
                if deadline is None and patience_s is not None:
                    deadline = time.monotonic() + patience_s
            if pending:
                pending = not _send(interrupt)
            if deadline is not None and time.monotonic() >= deadline:
                return Outcome(None, Stopped(noted[0]))
    return Outcome(cell.value(), Stopped(noted[0]) if noted else None)


def _send(interrupt: Callable[[], bool]) -> bool:
    """``interrupt()``; whether it is done with (it reached a cell, or it cannot)."""
    try:
        return interrupt()
    except AiDataAgentError as exc:
        err_console.print(f"[red]error:[/red] cannot interrupt the cell: {exc}", highlight=False)
        return True


def show_output(kind: str, data: dict[str, Any]) -> None:
    """A cell's stdout and stderr, as they come."""
    if kind in ("stdout", "stderr"):
        stream = sys.stdout if kind == "stdout" else sys.stderr
        stream.write(str(data.get("data", "")))
        stream.flush()


def _save_images(outputs: list[DisplayOutput], directory: Path | None, prefix: str) -> list[str]:
    """Write the PNG outputs under ``directory``; return a line per image for the terminal."""
    lines = []
    for number, output in enumerate(outputs, start=1):
        png = output.data.get("image/png")
        if not isinstance(png, str):
            continue
        if directory is None:
            lines.append(f"[image {number}: {len(png) * 3 // 4} bytes; --images DIR saves it]")
            continue
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{prefix}-{number}.png"
        target.write_bytes(base64.b64decode(png))
        lines.append(f"[image saved to {target}]")
    return lines


def print_cell(cell: CellResult, images: Path | None) -> None:
    """What the output did not show already: rich outputs, the value, the error, the files
    written under ``outputs/`` (by the path ``session get`` takes)."""
    shown = [o for o in cell.outputs if "image/png" not in o.data]
    for output in shown:
        out_console.print(str(output.data.get("text/plain", "")), markup=False, highlight=False)
    for line in _save_images(cell.outputs, images, f"cell-{cell.execution_count}"):
        err_console.print(line, markup=False)
    if cell.result is not None:
        out_console.print(
            str(cell.result.data.get("text/plain", "")), markup=False, highlight=False
        )
    if cell.error is not None:
        sys.stderr.write(cell.error.text)
    for artifact in cell.artifacts:
        err_console.print(
            f"file: {artifact.file_path} ({artifact.size} bytes, {artifact.media_type})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if cell.state == "lost":
        err_console.print(
            f"[yellow]{cell.status.value}: the kernel restarted; earlier variables are gone[/yellow]"
        )
