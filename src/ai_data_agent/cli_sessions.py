"""``ai-data-agent session ...``: sessions on a daemon from the command line.

    ai-data-agent session new -p pandas --file sales.csv:data/sales.csv     # prints the id
    ai-data-agent session run ID analysis.py        # or code on stdin; output as it comes
    ai-data-agent session ls | show ID | install ID -p six | interrupt ID | restart ID | rm ID
    ai-data-agent session put ID local.csv data/x.csv ; ai-data-agent session get ID outputs/y.png

A session outlives one command only on a daemon, so ``session`` needs
``--server`` (or ``AI_DATA_AGENT_SERVER``); ``repl`` (`ai_data_agent.cli_repl`)
works either way: on the local engine its session lives as long as the prompt
does. A cell's exit code is 0 when it succeeded, 1 for an exception, and the run
codes otherwise (124 timed out, 130 interrupted, 137 memory, 134 kernel died, 123
output); a session that is busy, gone or unknown exits 2. The cells' printing
and error handling here serve the repl too.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ai_data_agent.cli_common import (
    EXIT_AUTH,
    EXIT_INFRASTRUCTURE,
    EXIT_USAGE,
    auth_hint,
    client_for,
    err_console,
    fail,
    input_files,
    load_settings,
    out_console,
    read_code,
    read_requirements,
    setup_logging,
)
from ai_data_agent.client import Client
from ai_data_agent.errors import (
    AiDataAgentError,
    NotFound,
    RequestRejected,
    SessionError,
    Unauthorized,
)
from ai_data_agent.session_models import CellResult, CellStatus, DisplayOutput, SessionInfo
from ai_data_agent.settings import Settings

__all__ = ["CELL_EXIT_CODES", "Server", "guarded", "print_cell", "session_app", "show_output"]

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

Server = Annotated[
    str | None, typer.Option(metavar="URL", help="The daemon (default: AI_DATA_AGENT_SERVER).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _remote(server: str | None) -> tuple[Client, Settings]:
    settings = load_settings()
    setup_logging(settings, "WARNING")
    url = server or settings.server
    if url is None:
        raise fail(NEEDS_SERVER, EXIT_USAGE)
    return client_for(url, settings), settings


def guarded(call: Callable[[], Any]) -> Any:
    """``call()``; its errors exit 2 when they are the caller's to fix, 77 for the token,
    else 125."""
    try:
        return call()
    except Unauthorized as exc:
        raise fail(auth_hint(exc, load_settings().token), EXIT_AUTH) from exc
    except (RequestRejected, NotFound, SessionError) as exc:  # the caller's to fix
        raise fail(str(exc), EXIT_USAGE) from exc
    except AiDataAgentError as exc:
        raise fail(str(exc), EXIT_INFRASTRUCTURE) from exc


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
    """What the output did not show already: rich outputs, the value, the error."""
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
        sys.stderr.write(
            "".join(cell.error.traceback) or f"{cell.error.ename}: {cell.error.evalue}\n"
        )
    if cell.state == "lost":
        err_console.print(
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
    client, _ = _remote(server)
    fields = {
        "requirements": read_requirements(requirements_file, package or []),
        "files": input_files(file_specs or []),
        "memory_mb": memory,
        "cpus": cpus,
        "cell_timeout_s": cell_timeout,
    }
    with client:
        session = guarded(
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
    code = read_code(file)
    client, _ = _remote(server)
    with client:
        session = guarded(lambda: client.session_of(session_id))
        on_output = None if as_json else show_output
        cell = guarded(lambda: session.run(code, timeout_s=timeout, on_output=on_output))
    if as_json:
        typer.echo(cell.model_dump_json(indent=2))
    else:
        print_cell(cell, images)
    raise typer.Exit(CELL_EXIT_CODES[cell.status])


def _info_table(items: list[SessionInfo]) -> Table:
    table = Table()
    table.add_column("id", no_wrap=True, min_width=32)  # whole: it is what the next command takes
    for title in ("status", "cells", "generation", "requirements", "last activity"):
        table.add_column(title)
    for info in items:
        table.add_row(
            info.id,
            info.status.value,
            str(info.execution_count),
            str(info.generation),
            " ".join(info.requirements),
            info.last_activity_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    return table


@session_app.command("ls")
def list_sessions(server: Server = None, as_json: AsJson = False) -> None:
    """Sessions, live first."""
    client, _ = _remote(server)
    with client:
        items = guarded(client.sessions)
    if as_json:
        typer.echo(json.dumps([i.model_dump(mode="json") for i in items], indent=2))
    else:
        out_console.print(_info_table(items))


@session_app.command("show")
def show(session_id: str, server: Server = None) -> None:
    """A session as JSON."""
    client, _ = _remote(server)
    with client:
        session = guarded(lambda: client.session_of(session_id))
    typer.echo(session.info.model_dump_json(indent=2))


def _call(session_id: str, server: str | None, action: Callable[[Any], Any]) -> Any:
    client, _ = _remote(server)
    with client:
        session = guarded(lambda: client.session_of(session_id))
        return guarded(lambda: action(session))


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
        err_console.print(
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
    try:
        data = local.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {local}: {exc.strerror}", EXIT_USAGE) from exc
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
