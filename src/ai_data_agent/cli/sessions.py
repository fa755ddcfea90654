"""``ai-data-agent session ...``: sessions on a daemon from the command line.

    ai-data-agent session new -p pandas --file sales.csv:data/sales.csv     # prints the id
    ai-data-agent session run ID analysis.py        # or code on stdin; output as it comes
    ai-data-agent session ls | show ID | install ID six | interrupt ID | restart ID | rm ID
    ai-data-agent session put ID local.csv data/x.csv ; ai-data-agent session get ID outputs/y.png

A session outlives one command only on a daemon, so ``session`` needs
``--server`` (or ``AI_DATA_AGENT_SERVER``); ``repl`` (`ai_data_agent.cli.repl`)
works either way: on the local engine its session lives as long as the prompt
does. File paths are relative to the session's working directory (a cell's
files under ``outputs/`` are listed by that path after it). A cell's exit code
is 0 when it succeeded, 1 for an exception, and the run codes otherwise (124
timed out, 130 interrupted, 137 memory, 134 kernel died, 123 output); a session
that is busy (or no room for a new one) exits 75, gone or unknown 2
(`ai_data_agent.cli.exits`). Ctrl-C on ``session run`` interrupts the cell on
the daemon before the command exits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ai_data_agent.checkpoint_models import LostVariable
from ai_data_agent.cli.cells import Outcome, print_cell, run_interruptible, show_output
from ai_data_agent.cli.common import (
    client_for,
    err_console,
    fail,
    guarded,
    load_settings,
    out_console,
    setup_logging,
    working,
)
from ai_data_agent.cli.exits import CELL_EXIT_CODES, EXIT_USAGE
from ai_data_agent.cli.inputs import (
    AllowHosts,
    input_files,
    network_option,
    read_code,
    read_requirements,
)
from ai_data_agent.cli.stopping import stop_code
from ai_data_agent.client import Client, RemoteSession
from ai_data_agent.client.sessions import file_path
from ai_data_agent.session_models import SessionInfo
from ai_data_agent.settings import Settings

__all__ = ["INTERRUPT_PATIENCE_S", "Server", "session_app"]

NEEDS_SERVER = (
    "a session outlives one command only on a daemon: pass --server URL or set "
    "AI_DATA_AGENT_SERVER (or use `ai-data-agent repl`, whose session lives with the prompt)"
)
# How long `session run`, stopped, waits for the interrupted cell beyond the daemon's
# interrupt grace (after which the kernel is killed and the cell ends anyway).
INTERRUPT_PATIENCE_S = 30.0

session_app = typer.Typer(help="Stateful sessions on a daemon: a kernel that keeps its variables.")

Server = Annotated[
    str | None, typer.Option(metavar="URL", help="The daemon (default: AI_DATA_AGENT_SERVER).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Packages = Annotated[
    list[str] | None, typer.Option("-p", "--package", help="A requirement (repeatable).")
]


def _remote(server: str | None) -> tuple[Client, Settings]:
    settings = load_settings()
    setup_logging(settings, "WARNING")
    url = server or settings.server
    if url is None:
        raise fail(NEEDS_SERVER, EXIT_USAGE)
    return client_for(url, settings), settings


def starting(requirements: Sequence[str], where: str) -> str:
    """What a spinner says while a session starts."""
    installing = f"installing {', '.join(requirements)}, then " if requirements else ""
    return f"{installing}starting a session {where}"


@session_app.command("new")
def new(
    package: Packages = None,
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
    allow: AllowHosts = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", "-d", metavar="NAME[@V]", help="Mounted at /data/NAME."),
    ] = None,
    server: Server = None,
    as_json: AsJson = False,
) -> None:
    """Start a session; print its id."""
    client, _ = _remote(server)
    requirements = read_requirements(requirements_file, package or [])
    fields = {
        "requirements": requirements,
        "files": input_files(file_specs or []),
        "memory_mb": memory,
        "cpus": cpus,
        "cell_timeout_s": cell_timeout,
        "network": network_option(allow) if allow else None,
        "datasets": dataset,
    }
    with client, working(starting(requirements, "on the daemon")):
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
    """Run a cell; its output as it comes, then its value. Ctrl-C interrupts the cell."""
    code = read_code(file)
    client, _ = _remote(server)
    with client:
        session = guarded(lambda: client.session_of(session_id))
        on_output = None if as_json else show_output
        sessions = guarded(client.info).sessions
        grace = sessions.interrupt_grace_s if sessions is not None else 0.0
        outcome = guarded(
            lambda: run_interruptible(
                lambda: session.run(code, timeout_s=timeout, on_output=on_output),
                session.interrupt,
                patience_s=grace + INTERRUPT_PATIENCE_S,
                notice=f"stopping: interrupting the cell in session {session.id} on the daemon",
            )
        )
    if outcome.cell is not None:
        if as_json:
            typer.echo(outcome.cell.model_dump_json(indent=2))
        else:
            print_cell(outcome.cell, images)
    raise _cell_exit(outcome, session.id)


def _cell_exit(outcome: Outcome, session_id: str) -> typer.Exit:
    """The cell's exit code; stopped, 128 + the signal, once said what became of the cell."""
    if outcome.stop is None:
        assert outcome.cell is not None
        return typer.Exit(CELL_EXIT_CODES[outcome.cell.status])
    if outcome.cell is None:
        err_console.print(
            f"[red]stopped[/red] by {outcome.stop}: the cell still runs on the daemon; "
            f"`ai-data-agent session interrupt {session_id}` asks again",
            highlight=False,
        )
    else:
        err_console.print(
            f"[red]stopped[/red] by {outcome.stop}: the cell was interrupted", highlight=False
        )
    return typer.Exit(stop_code(outcome.stop))


_COLUMNS = ("id", "status", "cells", "generation", "requirements", "last activity")


def _rows(items: list[SessionInfo]) -> list[tuple[str, ...]]:
    return [
        (
            info.id,
            info.status.value,
            str(info.execution_count),
            str(info.generation),
            " ".join(info.requirements) or "-",
            info.last_activity_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
        for info in items
    ]


def _print_table(items: list[SessionInfo]) -> None:
    """A table on a terminal; elsewhere plain columns, whole, as wide as their values."""
    rows = _rows(items)
    if out_console.is_terminal:
        table = Table()
        table.add_column(_COLUMNS[0], no_wrap=True, min_width=32)  # whole: the next command's
        for title in _COLUMNS[1:]:
            table.add_column(title)
        for row in rows:
            table.add_row(*row)
        out_console.print(table)
        return
    columns = [_COLUMNS, *rows]
    widths = [max(len(row[i]) for row in columns) for i in range(len(_COLUMNS))]
    for row in columns:
        typer.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


@session_app.command("ls")
def list_sessions(server: Server = None, as_json: AsJson = False) -> None:
    """Sessions, live first (plain columns when the output is not a terminal)."""
    client, _ = _remote(server)
    with client:
        items = guarded(client.sessions)
    if as_json:
        typer.echo(json.dumps([i.model_dump(mode="json") for i in items], indent=2))
    else:
        _print_table(items)


@session_app.command("show")
def show(session_id: str, server: Server = None) -> None:
    """A session as JSON."""
    client, _ = _remote(server)
    with client:
        session = guarded(lambda: client.session_of(session_id))
    typer.echo(session.info.model_dump_json(indent=2))


def _call(session_id: str, server: str | None, action: Callable[[RemoteSession], Any]) -> Any:
    client, _ = _remote(server)
    with client:
        session = guarded(lambda: client.session_of(session_id))
        return guarded(lambda: action(session))


@session_app.command("install")
def install(
    session_id: str,
    packages: Annotated[
        list[str] | None, typer.Argument(help="Requirements, as pip install takes them.")
    ] = None,
    package: Packages = None,
    server: Server = None,
) -> None:
    """Add requirements (installed outside the session's sandbox, then on its path)."""
    requirements = [*(packages or []), *(package or [])]
    if not requirements:
        raise fail("name the requirements to add (e.g. `session install ID six`)", EXIT_USAGE)
    with working(f"installing {', '.join(requirements)}"):
        change = _call(session_id, server, lambda s: s.install(requirements))
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


def _lost_lines(lost: list[LostVariable]) -> str:
    return "".join(f"\n  not kept: {v.name} ({v.type}): {v.reason}" for v in lost)


@session_app.command("checkpoint")
def checkpoint(session_id: str, server: Server = None, as_json: AsJson = False) -> None:
    """Checkpoint the session: its variables (those that can be kept) and files."""
    info = _call(session_id, server, lambda s: s.checkpoint())
    if as_json:
        typer.echo(info.model_dump_json(indent=2))
        return
    head = f"checkpoint {info.seq} after cell {info.execution_count}: {len(info.kept)} kept"
    typer.echo(f"{head}, {len(info.lost)} not, {info.bytes} bytes{_lost_lines(info.lost)}")


@session_app.command("pause")
def pause(session_id: str, server: Server = None) -> None:
    """Checkpoint, then remove the container; the next call (or `resume`) resumes it."""
    info = _call(session_id, server, lambda s: s.pause())
    typer.echo(f"{info.status.value} at checkpoint {info.checkpoint}")


@session_app.command("resume")
def resume(session_id: str, server: Server = None, as_json: AsJson = False) -> None:
    """Resume a paused session: which variables came back, which did not."""
    report = _call(session_id, server, lambda s: s.resume())
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    head = f"{report.state}: {len(report.restored)} variable(s) back"
    typer.echo(f"{head}{_lost_lines(report.lost)}")


@session_app.command("fork")
def fork(
    session_id: str,
    checkpoint: Annotated[
        int | None, typer.Option(help="The checkpoint's number (default: now, or the latest).")
    ] = None,
    server: Server = None,
) -> None:
    """A new session from the session's state; prints its id."""
    forked = _call(session_id, server, lambda s: s.fork(checkpoint))
    typer.echo(forked.id)


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
        str | None,
        typer.Argument(help="Path under the session's working directory (default: LOCAL's name)."),
    ] = None,
    server: Server = None,
) -> None:
    """Upload a file to the session's working directory."""
    guarded(lambda: file_path(dest or local.name))  # refused before any request
    try:
        data = local.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {local}: {exc.strerror}", EXIT_USAGE) from exc
    stored = _call(session_id, server, lambda s: s.upload(dest or local.name, data))
    typer.echo(f"{stored.path} ({stored.size} bytes)")


@session_app.command("get")
def get(
    session_id: str,
    path: Annotated[
        str, typer.Argument(help="Path under the session's working directory (outputs/...).")
    ],
    local: Annotated[
        Path | None, typer.Argument(help="Where to write it (default: its name).")
    ] = None,
    server: Server = None,
) -> None:
    """Download a file from the session's working directory."""
    guarded(lambda: file_path(path))  # refused here, as `put` refuses it, before any request
    data = _call(session_id, server, lambda s: s.download(path))
    target = local or Path(Path(path).name)
    target.write_bytes(data)
    typer.echo(f"{target} ({len(data)} bytes)")
