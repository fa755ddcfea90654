"""``ai-data-agent dataset ...``: datasets on a daemon from the command line.

    ai-data-agent dataset put sales sales.csv          # a file, or a folder: a new version
    ai-data-agent dataset ls | show sales | describe sales@2
    ai-data-agent dataset get sales out/               # every file of the latest, checked
    ai-data-agent dataset get sales@2 out/ --file sales.csv
    ai-data-agent dataset rm sales@1 [--force]         # a version; `rm sales` the dataset

Datasets live on a daemon, so every command needs ``--server`` (or
``AI_DATA_AGENT_SERVER``). Uploads and downloads show a progress bar on a
terminal (on stderr; nothing elsewhere). ``NAME@V`` names version V, ``NAME``
the latest. Exit codes: 0, 2 for a refusal (no such dataset, a bad entry, a
cap, a dataset in use), 77 for the token, 125 for the daemon's failures.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

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
from ai_data_agent.cli.exits import EXIT_USAGE
from ai_data_agent.client import Client
from ai_data_agent.dataset_models import DatasetDescription

__all__ = ["dataset_app"]

dataset_app = typer.Typer(help="Datasets on a daemon: upload once, mount read-only anywhere.")
Server = Annotated[
    str | None, typer.Option(metavar="URL", help="The daemon (default: AI_DATA_AGENT_SERVER).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
REF = re.compile(r"^(?P<name>[^@]+)(?:@(?P<version>[0-9]+))?$")
NEEDS_SERVER = "datasets live on a daemon: pass --server URL or set AI_DATA_AGENT_SERVER"


def _client(server: str | None) -> Client:
    settings = load_settings()
    setup_logging(settings, "WARNING")
    url = server or settings.server
    if url is None:
        raise fail(NEEDS_SERVER, EXIT_USAGE)
    return client_for(url, settings)


def _ref(text: str) -> tuple[str, int | None]:
    found = REF.match(text)
    if found is None:
        raise fail(f"{text!r} is not NAME or NAME@VERSION", EXIT_USAGE)
    version = found.group("version")
    return found.group("name"), int(version) if version else None


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on a terminal (its update as ``progress(done, total)``); else None."""
    if not err_console.is_terminal:
        yield None
        return
    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _table(columns: list[str], rows: list[list[str]]) -> None:
    """A table on a terminal; tab-separated lines (with a header) elsewhere."""
    if out_console.is_terminal:
        table = Table(*columns)
        for row in rows:
            table.add_row(*row)
        out_console.print(table)
        return
    for row in [columns, *rows]:
        typer.echo("\t".join(row))


@dataset_app.command("put")
def put(
    name: str,
    path: Annotated[Path, typer.Argument(exists=True, help="A file, or a folder of files.")],
    server: Server = None,
    as_json: AsJson = False,
) -> None:
    """Upload a file or a folder as the next version of NAME; print the version."""
    client = _client(server)
    with client, _progress(f"uploading {path.name}") as progress:
        version = guarded(lambda: client.datasets.put(name, path, progress=progress))
    if as_json:
        typer.echo(version.model_dump_json(indent=2))
    else:
        typer.echo(f"{version.name}@{version.version} {version.digest[:12]} {version.size} bytes")


@dataset_app.command("ls")
def list_datasets(server: Server = None, as_json: AsJson = False) -> None:
    """The datasets, and the storage they use."""
    client = _client(server)
    with client:
        page = guarded(client.datasets.list)
    if as_json:
        typer.echo(page.model_dump_json(indent=2))
        return
    rows = [
        [d.tenant, d.name, str(d.latest), str(d.versions), str(d.size), f"{d.updated_at:%F %H:%M}"]
        for d in page.items
    ]
    _table(["TENANT", "NAME", "LATEST", "VERSIONS", "BYTES", "UPDATED"], rows)


@dataset_app.command("show")
def show(dataset: str, server: Server = None, as_json: AsJson = False) -> None:
    """A dataset's versions; NAME@V: that version's files."""
    name, number = _ref(dataset)
    client = _client(server)
    with client:
        if number is not None:
            version = guarded(lambda: client.datasets.version(name, number))
            if as_json:
                typer.echo(version.model_dump_json(indent=2))
            else:
                rows = [[f.path, str(f.size), f.sha256] for f in version.files or []]
                _table(["PATH", "BYTES", "SHA256"], rows)
            return
        info = guarded(lambda: client.datasets.show(name))
    if as_json:
        typer.echo(info.model_dump_json(indent=2))
        return
    rows = [
        [
            str(v.version),
            str(v.file_count),
            str(v.size),
            v.digest[:12],
            v.source,
            f"{v.created_at:%c}",
        ]
        for v in info.versions
    ]
    _table(["VERSION", "FILES", "BYTES", "DIGEST", "SOURCE", "CREATED"], rows)


def _print_description(description: DatasetDescription) -> None:
    for item in description.files:
        rows = "?" if item.rows is None else str(item.rows)
        out_console.print(f"[bold]{item.path}[/bold] ({item.format}, {rows} rows)", highlight=False)
        if item.error:
            out_console.print(f"  [red]{item.error}[/red]", highlight=False)
        for column in item.columns:
            typer.echo(f"  {column.name}: {column.type}")
        for note in item.notes:
            typer.echo(f"  note: {note}")
        for row in item.first_rows:
            typer.echo(f"  | {json.dumps(row)}")
    if description.other_files:
        typer.echo(f"({description.other_files} other file(s) not tabular)")


@dataset_app.command("describe")
def describe(dataset: str, server: Server = None, as_json: AsJson = False) -> None:
    """Columns, types, row counts and first rows of the tabular files (computed once)."""
    name, number = _ref(dataset)
    client = _client(server)
    with client, working(f"describing {dataset} in a sandbox"):
        description = guarded(lambda: client.datasets.describe(name, number))
    if as_json:
        typer.echo(description.model_dump_json(indent=2))
    else:
        _print_description(description)


@dataset_app.command("get")
def get(
    dataset: str,
    target: Annotated[Path, typer.Argument(help="The folder the files go to.")],
    file: Annotated[str | None, typer.Option(help="Only this file of the version.")] = None,
    server: Server = None,
) -> None:
    """Download a version's files (checked against its manifest)."""
    name, number = _ref(dataset)
    client = _client(server)
    with client, _progress(f"downloading {dataset}") as progress:
        written = guarded(
            lambda: client.datasets.get(name, target, version=number, path=file, progress=progress)
        )
    for path in written:
        typer.echo(str(path))


@dataset_app.command("rm")
def remove(
    dataset: str,
    force: Annotated[bool, typer.Option(help="Even while a live session mounts it.")] = False,
    server: Server = None,
) -> None:
    """Delete a version (NAME@V) or a whole dataset (NAME)."""
    name, number = _ref(dataset)
    client = _client(server)
    with client:
        deleted = guarded(lambda: client.datasets.delete(name, version=number, force=force))
    typer.echo(json.dumps([f"{v.name}@{v.version}" for v in deleted]))
