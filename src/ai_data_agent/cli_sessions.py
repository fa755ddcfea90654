"""``ai-data-agent session ...`` and ``ai-data-agent repl``: sessions from the command line.

    ai-data-agent session new -p pandas --file sales.csv:data/sales.csv     # prints the id
    ai-data-agent session run ID analysis.py        # or code on stdin; output as it comes
    ai-data-agent session ls | show ID | install ID -p six | interrupt ID | restart ID | rm ID
    ai-data-agent session put ID local.csv data/x.csv ; ai-data-agent session get ID outputs/y.png
    ai-data-agent repl [--server URL] [-p pandas] [--images DIR]

A session outlives one command only on a daemon, so ``session`` needs
``--server`` (or ``AI_DATA_AGENT_SERVER``); ``repl`` works either way: on the
local engine its session lives as long as the prompt does. A cell's exit code
is 0 when it succeeded, 1 for an exception, and the run codes otherwise (124
timed out, 130 interrupted, 137 memory, 134 kernel died, 123 output); a
session that is busy, gone or unknown exits 2.
"""

from __future__ import annotations

import base64
import codeop
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer
from rich.console import Console
from rich.table import Table

from ai_data_agent.errors import (
    AiDataAgentError,
    NotFound,
    RequestRejected,
    SessionError,
    SessionGone,
)
from ai_data_agent.session_models import CellResult, CellStatus, DisplayOutput, SessionInfo
from ai_data_agent.settings import Settings

__all__ = ["CELL_EXIT_CODES", "repl", "session_app"]

CELL_EXIT_CODES = {
    CellStatus.SUCCEEDED: 0,
    CellStatus.ERROR: 1,
    CellStatus.OUTPUT_EXCEEDED: 123,
    CellStatus.TIMED_OUT: 124,
    CellStatus.INTERRUPTED: 130,
    CellStatus.KERNEL_DIED: 134,
    CellStatus.MEMORY_EXCEEDED: 137,
}
NEEDS_SERVER = (
    "a session outlives one command only on a daemon: pass --server URL or set "
    "AI_DATA_AGENT_SERVER (or use `ai-data-agent repl`, whose session lives with the prompt)"
)

session_app = typer.Typer(help="Stateful sessions on a daemon: a kernel that keeps its variables.")
out = Console()
err = Console(stderr=True)

Server = Annotated[
    str | None, typer.Option(metavar="URL", help="The daemon (default: AI_DATA_AGENT_SERVER).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


class CellRunner(Protocol):
    """What the repl needs of a session, local or remote."""

    def run_cell(
        self, code: str, on_output: Callable[[str, dict[str, Any]], None]
    ) -> CellResult: ...

    def end(self) -> None: ...


def _cli() -> Any:
    from ai_data_agent import cli  # the shared helpers (settings, errors, exit codes)

    return cli


def _remote(server: str | None) -> tuple[Any, Settings]:
    cli = _cli()
    settings = cli._settings()
    cli._logging(settings, "WARNING")
    url = server or settings.server
    if url is None:
        raise cli._fail(NEEDS_SERVER, cli.EXIT_USAGE)
    return cli._client(url, settings), settings


def _guarded(call: Callable[[], Any]) -> Any:
    cli = _cli()
    try:
        return call()
    except (RequestRejected, NotFound, SessionError) as exc:  # the caller's to fix
        raise cli._fail(str(exc), cli.EXIT_USAGE) from exc
    except AiDataAgentError as exc:
        raise cli._fail(str(exc), cli.EXIT_INFRASTRUCTURE) from exc


def _show_output(kind: str, data: dict[str, Any]) -> None:
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


def _print_cell(cell: CellResult, images: Path | None) -> None:
    """What the output did not show already: rich outputs, the value, the error."""
    shown = [o for o in cell.outputs if "image/png" not in o.data]
    for output in shown:
        out.print(str(output.data.get("text/plain", "")), markup=False, highlight=False)
    for line in _save_images(cell.outputs, images, f"cell-{cell.execution_count}"):
        err.print(line, markup=False)
    if cell.result is not None:
        out.print(str(cell.result.data.get("text/plain", "")), markup=False, highlight=False)
    if cell.error is not None:
        sys.stderr.write(
            "".join(cell.error.traceback) or f"{cell.error.ename}: {cell.error.evalue}\n"
        )
    if cell.state == "lost":
        err.print(
            f"[yellow]{cell.status.value}: the kernel restarted; earlier variables are gone[/yellow]"
        )


@session_app.command("new")
def new(
    package: Annotated[
        list[str] | None, typer.Option("-p", "--package", help="A requirement.")
    ] = None,
    requirements_file: Annotated[
        Path | None, typer.Option("-r", "--requirements", help="A requirements.txt file.")
    ] = None,
    file_specs: Annotated[
        list[str] | None,
        typer.Option("--file", "-f", metavar="LOCAL[:DEST]", help="An input file."),
    ] = None,
    memory: Annotated[int | None, typer.Option(help="Memory limit in MiB.")] = None,
    cpus: Annotated[float | None, typer.Option(help="CPU limit (cores).")] = None,
    cell_timeout: Annotated[float | None, typer.Option(help="Default seconds per cell.")] = None,
    server: Server = None,
    as_json: AsJson = False,
) -> None:
    """Start a session; print its id."""
    cli = _cli()
    client, _ = _remote(server)
    fields = {
        "requirements": cli._requirements(requirements_file, package or []),
        "files": cli._input_files(file_specs or []),
        "memory_mb": memory,
        "cpus": cpus,
        "cell_timeout_s": cell_timeout,
    }
    with client:
        session = _guarded(
            lambda: client.session(**{k: v for k, v in fields.items() if v is not None})
        )
    typer.echo(session.info.model_dump_json(indent=2) if as_json else session.id)


@session_app.command("run")
def run(
    session_id: str,
    file: Annotated[
        str, typer.Argument(help="Python file to run as a cell, or - for stdin.")
    ] = "-",
    timeout: Annotated[float | None, typer.Option(help="Seconds the cell may run.")] = None,
    images: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Save image outputs here.")
    ] = None,
    server: Server = None,
    as_json: AsJson = False,
) -> None:
    """Run a cell; its output as it comes, then its value."""
    code = _cli()._read_code(file)
    client, _ = _remote(server)
    with client:
        session = _guarded(lambda: client.session_of(session_id))
        on_output = None if as_json else _show_output
        cell = _guarded(lambda: session.run(code, timeout_s=timeout, on_output=on_output))
    if as_json:
        typer.echo(cell.model_dump_json(indent=2))
    else:
        _print_cell(cell, images)
    raise typer.Exit(CELL_EXIT_CODES[cell.status])


def _info_table(items: list[SessionInfo]) -> Table:
    table = Table()
    table.add_column("id", no_wrap=True, min_width=32)  # whole: it is what the next command takes
    for title in ("status", "cells", "generation", "requirements", "last activity"):
        table.add_column(title)
    for info in items:
        table.add_row(
            info.id, info.status.value, str(info.execution_count), str(info.generation),
            " ".join(info.requirements), info.last_activity_at.strftime("%Y-%m-%d %H:%M:%S"),
        )  # fmt: skip
    return table


@session_app.command("ls")
def list_sessions(server: Server = None, as_json: AsJson = False) -> None:
    """Sessions, live first."""
    client, _ = _remote(server)
    with client:
        items = _guarded(client.sessions)
    if as_json:
        typer.echo(json.dumps([i.model_dump(mode="json") for i in items], indent=2))
    else:
        out.print(_info_table(items))


@session_app.command("show")
def show(session_id: str, server: Server = None) -> None:
    """A session as JSON."""
    client, _ = _remote(server)
    with client:
        session = _guarded(lambda: client.session_of(session_id))
    typer.echo(session.info.model_dump_json(indent=2))


def _call(session_id: str, server: str | None, action: Callable[[Any], Any]) -> Any:
    client, _ = _remote(server)
    with client:
        session = _guarded(lambda: client.session_of(session_id))
        return _guarded(lambda: action(session))


@session_app.command("install")
def install(
    session_id: str,
    package: Annotated[list[str], typer.Option("-p", "--package", help="A requirement.")],
    server: Server = None,
) -> None:
    """Add requirements (installed outside the session's sandbox, then on its path)."""
    change = _call(session_id, server, lambda s: s.install(package))
    typer.echo(change.model_dump_json(indent=2, exclude={"install"}))
    if change.restart_required:
        err.print(
            "[yellow]a package the kernel imported changed: `session restart` to use it[/yellow]"
        )


@session_app.command("interrupt")
def interrupt(session_id: str, server: Server = None) -> None:
    """Interrupt the running cell."""
    typer.echo(
        "interrupted" if _call(session_id, server, lambda s: s.interrupt()) else "nothing ran"
    )


@session_app.command("restart")
def restart(session_id: str, server: Server = None) -> None:
    """A fresh kernel: variables lost, files kept."""
    info = _call(session_id, server, lambda s: s.restart())
    typer.echo(f"generation {info.generation}")


@session_app.command("rm")
def remove(session_id: str, server: Server = None) -> None:
    """Close a session; its container is removed."""
    info = _call(session_id, server, lambda s: s.close())
    typer.echo(info.status.value)


@session_app.command("put")
def put(
    session_id: str,
    local: Path,
    dest: Annotated[
        str | None, typer.Argument(help="Path in the session (default: LOCAL's name).")
    ] = None,
    server: Server = None,
) -> None:
    """Upload a file to the session's working directory."""
    cli = _cli()
    try:
        data = local.read_bytes()
    except OSError as exc:
        raise cli._fail(f"cannot read {local}: {exc.strerror}", cli.EXIT_USAGE) from exc
    stored = _call(session_id, server, lambda s: s.upload(dest or local.name, data))
    typer.echo(f"{stored.path} ({stored.size} bytes)")


@session_app.command("get")
def get(
    session_id: str,
    path: str,
    local: Annotated[
        Path | None, typer.Argument(help="Where to write it (default: its name).")
    ] = None,
    server: Server = None,
) -> None:
    """Download a file from the session's working directory."""
    data = _call(session_id, server, lambda s: s.download(path))
    target = local or Path(Path(path).name)
    target.write_bytes(data)
    typer.echo(f"{target} ({len(data)} bytes)")


# -- repl -----------------------------------------------------------------------------------


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
    cli = _cli()
    settings = cli._settings()
    cli._logging(settings, "WARNING")
    fields = {"requirements": list(package or []), "files": cli._input_files(file_specs or [])}
    url = server or settings.server
    if url is None:
        cli._require_engine(settings)
    cells: CellRunner = _guarded(
        lambda: (
            _RemoteCells(cli._client(url, settings), fields)
            if url
            else _LocalCells(settings, fields)
        )
    )
    err.print("session ready; Ctrl-D ends it (its sandbox is removed)", markup=False)
    try:
        while (code := _read_cell(">>> ")) is not None:
            if not code.strip():
                continue
            try:
                cell = cells.run_cell(code, _show_output)
            except SessionGone as exc:
                err.print(f"[red]the session ended:[/red] {exc}")
                break
            except AiDataAgentError as exc:
                err.print(f"[red]error:[/red] {exc}")
                continue
            _print_cell(cell, images)
    except KeyboardInterrupt:
        err.print()
    finally:
        cells.end()
