"""``ai-data-agent repl``: an interactive prompt on a fresh session, here or on a daemon.

    ai-data-agent repl -p pandas --file sales.csv:data/sales.csv --images plots/
    ai-data-agent repl --server http://127.0.0.1:8000     # or AI_DATA_AGENT_SERVER

Without a server the session runs on the local engine and lives as long as the
prompt does; either way it is removed when the prompt ends. A cell is read as
Python's own REPL reads one: lines until the code is complete. The keys are
Jupyter's and IPython's: Ctrl-C while a cell runs interrupts it (a
``KeyboardInterrupt`` in the cell, the variables kept, the prompt back); Ctrl-C
at the prompt drops what was typed; Ctrl-D or ``exit`` ends the prompt and
closes the session, as SIGTERM and SIGHUP do. Cells print as ``session run``
prints them (`ai_data_agent.cli.cells`).
"""

from __future__ import annotations

import codeop
import functools
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ai_data_agent.cli.cells import print_cell, run_interruptible, show_output
from ai_data_agent.cli.common import (
    client_for,
    err_console,
    guarded,
    load_settings,
    require_engine,
    setup_logging,
    working,
)
from ai_data_agent.cli.inputs import input_files
from ai_data_agent.cli.sessions import Server, starting
from ai_data_agent.cli.stopping import Stopped, stop_code, stoppable
from ai_data_agent.client import Client
from ai_data_agent.errors import AiDataAgentError, SessionGone
from ai_data_agent.executor import Executor, RunEvent
from ai_data_agent.session_models import CellResult
from ai_data_agent.settings import Settings

__all__ = ["LEAVE", "repl"]

LEAVE = frozenset({"exit", "exit()", "quit", "quit()"})  # as Python's REPL, they end it
OnOutput = Callable[[str, dict[str, Any]], None]
T = TypeVar("T")


@dataclass
class Cells:
    """What the repl needs of a session, local or remote: run a cell, interrupt it, and
    close the session, then what holds it (the executor, or the daemon's client)."""

    run_cell: Callable[[str, OnOutput], CellResult]
    interrupt: Callable[[], bool]
    close_session: Callable[[], object]
    close_holder: Callable[[], None]

    def end(self) -> None:
        try:
            self.close_session()
        finally:
            self.close_holder()


def _opened(holder: Executor | Client, start: Callable[[], T]) -> T:
    """``start()``; what holds the session is closed if it fails (or is interrupted)."""
    try:
        return start()
    except BaseException:
        holder.close()
        raise


def _local_cells(settings: Settings, fields: dict[str, Any]) -> Cells:
    executor = Executor(settings)
    session = _opened(executor, lambda: executor.session(**fields))

    def run_cell(code: str, on_output: OnOutput) -> CellResult:
        def relay(event: RunEvent) -> None:
            if event.kind in ("stdout", "stderr"):
                on_output(event.kind, {"data": event.data})

        return session.run(code, on_event=relay)

    return Cells(run_cell, session.interrupt, session.close, executor.close)


def _remote_cells(client: Client, fields: dict[str, Any]) -> Cells:
    session = _opened(client, lambda: client.session(**fields))

    def run_cell(code: str, on_output: OnOutput) -> CellResult:
        return session.run(code, on_output=on_output)

    return Cells(run_cell, session.interrupt, session.close, client.close)


def _read_cell(prompt: str) -> str | None:
    """One cell from the terminal: lines until the code is complete (as Python's REPL);
    None at the end of input. Ctrl-C drops the lines typed so far, as Python's REPL does."""
    lines: list[str] = []
    while True:
        try:
            line = input(prompt if not lines else "... ")
        except EOFError:
            if sys.stdin.isatty():
                err_console.print()  # the shell's prompt on a line of its own, as Python's REPL
            return None
        except KeyboardInterrupt as exc:
            if isinstance(exc, Stopped):
                raise
            err_console.print("\nKeyboardInterrupt", highlight=False)
            lines = []
            continue
        lines.append(line)
        source = "\n".join(lines)
        try:
            complete = codeop.compile_command(source, "<cell>", "exec") is not None
        except (SyntaxError, ValueError, OverflowError):
            complete = True  # the kernel reports the error
        if complete and (len(lines) == 1 or not line.strip()):
            return source


def _prompt(cells: Cells, images: Path | None) -> None:
    """Read, run and print cells until the input ends or says `LEAVE`.

    Raises:
        Stopped: SIGTERM or SIGHUP (a running cell is interrupted first).
    """
    while (code := _read_cell(">>> ")) is not None:
        if not code.strip():
            continue
        if code.strip() in LEAVE:
            return
        try:
            outcome = run_interruptible(
                functools.partial(cells.run_cell, code, show_output), cells.interrupt
            )
        except SessionGone as exc:
            err_console.print(f"[red]the session ended:[/red] {exc}", highlight=False)
            return
        except AiDataAgentError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False)
            continue
        assert outcome.cell is not None  # no patience limit: the cell always ends
        print_cell(outcome.cell, images)
        if outcome.stop is not None and outcome.stop.signum != signal.SIGINT:
            raise outcome.stop  # SIGTERM or SIGHUP: the cell was interrupted, now leave


def repl(
    server: Server = None,
    package: Annotated[
        list[str] | None, typer.Option("-p", "--package", help="A requirement.")
    ] = None,
    file_specs: Annotated[
        list[str] | None,
        typer.Option("--file", "-f", metavar="LOCAL[:DEST]", help="An input file."),
    ] = None,
    images: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Save image outputs here.")
    ] = None,
) -> None:
    """An interactive prompt on a fresh session, removed when the prompt ends.

    Ctrl-C interrupts a running cell (its variables are kept) or drops the line being
    typed; Ctrl-D or exit ends the prompt.
    """
    settings = load_settings()
    setup_logging(settings, "WARNING")
    requirements = list(package or [])
    fields = {"requirements": requirements, "files": input_files(file_specs or [])}
    url = server or settings.server
    if url is None:
        require_engine(settings)
    with working(starting(requirements, f"on {url}" if url else "on the local engine")):
        cells = guarded(
            lambda: (
                _remote_cells(client_for(url, settings), fields)
                if url
                else _local_cells(settings, fields)
            )
        )
    err_console.print(
        "session ready: Ctrl-C interrupts a cell; Ctrl-D or exit ends the session "
        "(its sandbox is removed)",
        markup=False,
    )
    try:
        with stoppable((signal.SIGTERM, signal.SIGHUP)):  # later ones wait for the cleanup
            try:
                _prompt(cells, images)
            finally:
                cells.end()
    except Stopped as exc:
        err_console.print(f"\nstopped by {exc}: the session was closed", highlight=False)
        raise typer.Exit(stop_code(exc)) from None
