"""``ai-data-agent run``: Python code in a fresh sandbox, on the local engine or on a daemon.

    ai-data-agent run analysis.py -p pandas --timeout 30
    echo 'print(1)' | ai-data-agent run - --json
    ai-data-agent run analysis.py --file data/sales.csv --output-dir out/
    ai-data-agent run analysis.py --server http://127.0.0.1:8000   # on a daemon

Without ``--json``, ``run`` prints the program's stdout and stderr as they come
(from the local engine or from a daemon's event stream) and exits with the
program's exit code, or one of the codes in `ai_data_agent.cli.exits` for
outcomes that are not the program's own (`exit_code_for`). With ``--json`` it
prints exactly one `RunResult` document on stdout. Progress goes to stderr.
``--server`` (or ``AI_DATA_AGENT_SERVER``, with the token from
``AI_DATA_AGENT_TOKEN``) sends the run to a daemon instead of the local engine;
the output and exit codes are the same either way. Stopped by a signal
(`ai_data_agent.cli.stopping`), it removes its sandbox (or cancels the run on the
daemon) first.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from ai_data_agent.cli.common import (
    client_for,
    err_console,
    exit_for,
    fail,
    load_settings,
    require_engine,
    setup_logging,
)
from ai_data_agent.cli.exits import EXIT_USAGE, exit_code_for
from ai_data_agent.cli.inputs import (
    AllowHosts,
    input_files,
    network_option,
    read_code,
    read_requirements,
)
from ai_data_agent.cli.stopping import stop_code, stoppable
from ai_data_agent.client import Client
from ai_data_agent.errors import AiDataAgentError, RequestRejected
from ai_data_agent.executor import Executor, RunEvent
from ai_data_agent.models import RunRequest, RunResult, RunStatus
from ai_data_agent.settings import Settings

__all__ = ["run"]


def _env_pairs(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise fail(f"--env {pair!r}: expected NAME=VALUE", EXIT_USAGE)
        env[name] = value
    return env


class _Progress:
    """Spinner on a terminal until the code runs, then the program's output, live."""

    def __init__(self, live_output: bool, label: str) -> None:
        self.live_output = live_output
        self.status = err_console.status(label) if err_console.is_terminal else None
        if self.status is not None:
            self.status.start()

    def __call__(self, event: RunEvent) -> None:
        if event.kind == "phase":
            label = {"installing": "installing packages", "ready": "verifying environment"}
            if event.data == "running":
                self.stop()
            elif self.status is not None and event.data in label:
                self.status.update(label[event.data])
        elif self.live_output:
            self.stop()
            stream = sys.stdout if event.kind == "stdout" else sys.stderr
            stream.write(event.data)
            stream.flush()

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


def _run_remote(
    client: Client, request: RunRequest, progress: _Progress, output_dir: Path | None
) -> RunResult:
    """Submit, follow the output to the result, fetch the artifacts. Interrupted, the
    run is cancelled on the daemon (its sandbox removed there) before this returns."""
    run_id = client.submit_request(request)
    try:
        if progress.live_output:
            result = client.follow(
                run_id, lambda stream, text: progress(RunEvent("", stream, text))
            )
        else:
            result = client.follow(run_id, lambda stream, text: None)
    except KeyboardInterrupt:
        progress.stop()
        _cancel_remote(client, run_id)
        raise
    if output_dir is not None:
        for artifact in result.artifacts:
            client.download_artifact(result.id, artifact, output_dir)
    return result


def _cancel_remote(client: Client, run_id: str) -> None:
    err_console.print(f"stopping: cancelling run {run_id} on the daemon", highlight=False)
    try:
        client.cancel(run_id)
    except AiDataAgentError as exc:
        err_console.print(f"[red]error:[/red] cannot cancel run {run_id}: {exc}", highlight=False)


def _output_directory(path: Path | None) -> Path | None:
    """``--output-dir``, created; refused (exit 2) before anything runs when it cannot be."""
    if path is None:
        return None
    if path.exists() and not path.is_dir():
        raise fail(f"--output-dir {path}: exists and is not a directory", EXIT_USAGE)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"--output-dir {path}: cannot create it: {exc.strerror}", EXIT_USAGE) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise fail(f"--output-dir {path}: not writable", EXIT_USAGE)
    return path


def _print_artifacts(result: RunResult, output_dir: Path | None) -> None:
    for artifact in result.artifacts:
        where = output_dir / artifact.path if output_dir is not None else artifact.path
        err_console.print(
            f"artifact: {where} ({artifact.size} bytes, {artifact.media_type})",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    for skipped in result.artifacts_skipped:
        err_console.print(
            f"not returned: {skipped.path}: {skipped.reason}", soft_wrap=True, markup=False
        )


def _report(result: RunResult, *, as_json: bool, output_dir: Path | None) -> None:
    """Print ``result``: the JSON document, or what was not streamed already."""
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
        return
    if result.stdout_truncated or result.stderr_truncated:
        err_console.print("[yellow]output truncated at the cap[/yellow]")
    if result.status == RunStatus.INSTALL_FAILED:
        sys.stderr.write(result.install.log_tail)
    _print_artifacts(result, output_dir)
    if result.status not in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        err_console.print(
            f"[red]{result.status.value}[/red]: {result.error or ''}", highlight=False
        )


RequirementsFile = Annotated[
    Path | None, typer.Option("-r", "--requirements", help="A requirements.txt file.")
]
Packages = Annotated[
    list[str] | None, typer.Option("-p", "--package", help="A requirement (repeatable).")
]
EnvPairs = Annotated[
    list[str] | None, typer.Option("--env", "-e", help="NAME=VALUE for the code (repeatable).")
]
FileSpecs = Annotated[
    list[str] | None,
    typer.Option(
        "--file",
        "-f",
        metavar="LOCAL[:DEST]",
        help="An input file, placed at DEST under the code's working directory (repeatable).",
    ),
]
OutputDir = Annotated[
    Path | None,
    typer.Option(metavar="DIR", help="Write the files the code leaves in outputs/ here."),
]
ServerUrl = Annotated[
    str | None,
    typer.Option(
        metavar="URL",
        help="Run on this daemon instead of the local engine (default: the "
        "AI_DATA_AGENT_SERVER variable).",
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        metavar="TOKEN",
        help="Bearer token for --server (default: the AI_DATA_AGENT_TOKEN variable, "
        "which keeps it out of the process list).",
    ),
]


def run(
    file: Annotated[str, typer.Argument(help="Python file to run, or - for stdin.")] = "-",
    requirements_file: RequirementsFile = None,
    package: Packages = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds the code may run.")] = None,
    memory: Annotated[int | None, typer.Option(help="Memory limit in MiB.")] = None,
    cpus: Annotated[float | None, typer.Option(help="CPU limit (cores).")] = None,
    network: Annotated[bool, typer.Option(help="Network for the code (if allowed).")] = False,
    allow: AllowHosts = None,
    env: EnvPairs = None,
    file_specs: FileSpecs = None,
    output_dir: OutputDir = None,
    server: ServerUrl = None,
    token: Token = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one RunResult JSON document.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Log at the configured level.")
    ] = False,
) -> None:
    """Run Python code in a fresh sandbox container, here or on a daemon.

    Exits with the program's exit code, or 122 install failed, 123 output cap
    exceeded, 124 timed out, 125 infrastructure error, 130 cancelled, 137 memory
    exceeded, 2 bad input, 69 no Docker engine, 77 token refused by the daemon;
    stopped by SIGINT, SIGTERM or SIGHUP, 128 + the signal (130, 143, 129) once the
    sandbox is removed (with --server: once the run is cancelled on the daemon).
    """
    settings = load_settings()
    setup_logging(settings, settings.log_level if verbose else "WARNING")
    try:
        request = RunRequest(
            code=read_code(file),
            requirements=read_requirements(requirements_file, package or []),
            timeout_s=timeout,
            memory_mb=memory,
            cpus=cpus,
            network=network_option(allow or [], unrestricted=network),
            env=_env_pairs(env or []),
            files=input_files(file_specs or []),
        )
    except ValidationError as exc:
        raise fail(str(RequestRejected.from_errors(exc.errors())), EXIT_USAGE) from exc
    output_dir = _output_directory(output_dir)
    server = server or settings.server
    if server is None:
        require_engine(settings)
    result = _execute(settings, request, server, token, as_json=as_json, output_dir=output_dir)
    _report(result, as_json=as_json, output_dir=output_dir)
    raise typer.Exit(exit_code_for(result))


def _execute(
    settings: Settings,
    request: RunRequest,
    server: str | None,
    token: str | None,
    *,
    as_json: bool,
    output_dir: Path | None,
) -> RunResult:
    """Run ``request`` here or on ``server``; every failure and stop is an exit."""
    label = "starting sandbox" if server is None else f"running on {server}"
    progress = _Progress(live_output=not as_json, label=label)
    try:
        with stoppable():
            if server is None:
                with Executor(settings) as executor:
                    return executor.run(request, on_event=progress, artifacts_dir=output_dir)
            with client_for(server, settings, token) as client:
                return _run_remote(client, request, progress, output_dir)
    except KeyboardInterrupt as exc:
        progress.stop()
        where = "the sandbox was removed" if server is None else "the run was cancelled"
        err_console.print(f"[red]stopped[/red] by {exc}: {where}", highlight=False)
        raise typer.Exit(stop_code(exc)) from None
    except AiDataAgentError as exc:  # a refusal here or at the daemon, or a failure
        raise exit_for(exc, token or settings.token) from exc
    finally:
        progress.stop()
