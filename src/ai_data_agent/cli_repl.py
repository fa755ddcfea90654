"""``ai-data-agent repl``: an interactive prompt on a fresh session, here or on a daemon.

    ai-data-agent repl -p pandas --file sales.csv:data/sales.csv --images plots/
    ai-data-agent repl --server http://127.0.0.1:8000     # or AI_DATA_AGENT_SERVER

Without a server the session runs on the local engine and lives as long as the
prompt does; either way it is removed when the prompt ends (Ctrl-D). A cell is
read as Python's own REPL reads one: lines until the code is complete. Cells print
as ``session run`` prints them (`ai_data_agent.cli_sessions`).
"""

from __future__ import annotations

import codeop
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer

from ai_data_agent.cli_common import (
    client_for,
    err_console,
    input_files,
    load_settings,
    require_engine,
    setup_logging,
)
from ai_data_agent.cli_sessions import Server, guarded, print_cell, show_output
from ai_data_agent.errors import AiDataAgentError, SessionGone
from ai_data_agent.session_models import CellResult
from ai_data_agent.settings import Settings

__all__ = ["repl"]


class CellRunner(Protocol):
    """What the repl needs of a session, local or remote."""

    def run_cell(
        self, code: str, on_output: Callable[[str, dict[str, Any]], None]
    ) -> CellResult: ...

    def end(self) -> None: ...


class _LocalCells:
    def __init__(self, settings: Settings, fields: dict[str, Any]) -> None:
        from ai_data_agent.executor import Executor

        self.executor = Executor(settings)
        self.session = self.executor.session(**fields)

    def run_cell(self, code: str, on_output: Callable[[str, dict[str, Any]], None]) -> CellResult:
        def relay(event: Any) -> None:
            if event.kind in ("stdout", "stderr"):
                on_output(event.kind, {"data": event.data})

        return self.session.run(code, on_event=relay)

    def end(self) -> None:
        self.session.close()
        self.executor.close()


class _RemoteCells:
    def __init__(self, client: Any, fields: dict[str, Any]) -> None:
        self.client = client
        self.session = client.session(**fields)

    def run_cell(self, code: str, on_output: Callable[[str, dict[str, Any]], None]) -> CellResult:
        result: CellResult = self.session.run(code, on_output=on_output)
        return result

    def end(self) -> None:
        try:
            self.session.close()
        finally:
            self.client.close()


def _read_cell(prompt: str) -> str | None:
    """One cell from the terminal: lines until the code is complete (as Python's REPL)."""
    lines: list[str] = []
    while True:
        try:
            line = input(prompt if not lines else "... ")
        except EOFError:
            return None
        lines.append(line)
        source = "\n".join(lines)
        try:
            complete = codeop.compile_command(source, "<cell>", "exec") is not None
        except (SyntaxError, ValueError, OverflowError):
            complete = True  # the kernel reports the error
        if complete and (len(lines) == 1 or not line.strip()):
            return source


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
    """An interactive prompt on a fresh session; the session is removed when it ends (Ctrl-D)."""
    settings = load_settings()
    setup_logging(settings, "WARNING")
    fields = {"requirements": list(package or []), "files": input_files(file_specs or [])}
    url = server or settings.server
    if url is None:
        require_engine(settings)
    cells: CellRunner = guarded(
        lambda: (
            _RemoteCells(client_for(url, settings), fields)
            if url
            else _LocalCells(settings, fields)
        )
    )
    err_console.print("session ready; Ctrl-D ends it (its sandbox is removed)", markup=False)
    try:
        while (code := _read_cell(">>> ")) is not None:
            if not code.strip():
                continue
            try:
                cell = cells.run_cell(code, show_output)
            except SessionGone as exc:
                err_console.print(f"[red]the session ended:[/red] {exc}")
                break
            except AiDataAgentError as exc:
                err_console.print(f"[red]error:[/red] {exc}")
                continue
            print_cell(cell, images)
    except KeyboardInterrupt:
        err_console.print()
    finally:
        cells.end()
