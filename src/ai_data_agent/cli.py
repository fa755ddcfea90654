"""The ``ai-data-agent`` command.

    ai-data-agent run analysis.py -p pandas --timeout 30
    echo 'print(1)' | ai-data-agent run - --json
    ai-data-agent run analysis.py --file data/sales.csv --output-dir out/
    ai-data-agent run analysis.py --server http://127.0.0.1:8000   # on a daemon
    ai-data-agent serve --host 0.0.0.0 --port 8000
    ai-data-agent mcp                     # MCP tools on stdio (the mcp extra; docs/mcp.md)
    AI_DATA_AGENT_DATABASE_URL=postgresql://... ai-data-agent worker   # a cluster's worker
    ai-data-agent doctor
    ai-data-agent cache list
    ai-data-agent sweep

Without ``--json``, ``run`` prints the program's stdout and stderr as they come
(from the local engine or from a daemon's event stream) and exits with the program's exit
code, or one of the codes below for outcomes that are not the program's own.
With ``--json`` it prints exactly one `RunResult` document on stdout. Progress
goes to stderr. ``--server`` (or ``AI_DATA_AGENT_SERVER``, with the token from
``AI_DATA_AGENT_TOKEN``) sends the run to a daemon instead of the local engine;
the output and exit codes are the same either way.

The commands that need the local engine (``run`` without ``--server``,
``doctor``, ``sweep``, ``cache``) check it first: where no Docker engine
answers, they print what to do and exit 69 (``EX_UNAVAILABLE`` of sysexits.h)
before any work.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path, PurePath
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ai_data_agent.cli_sessions import repl, session_app
from ai_data_agent.client import Client
from ai_data_agent.errors import (
    AiDataAgentError,
    ConfigurationError,
    DockerUnavailable,
    RequestRejected,
    Unauthorized,
)
from ai_data_agent.executor import Executor, RunEvent
from ai_data_agent.executor.docker_backend import connect
from ai_data_agent.executor.envcache import EnvCache, InstallFailure
from ai_data_agent.logs import SayOnce, configure_logging
from ai_data_agent.models import (
    InputFile,
    RunRequest,
    RunResult,
    RunStatus,
    parse_requirements_text,
)
from ai_data_agent.paths import normalise_relative_path
from ai_data_agent.settings import Settings, user_cache_dir
from ai_data_agent.stopping import stop_code, stoppable

__all__ = ["EXIT_AUTH", "EXIT_CODES", "EXIT_NO_ENGINE", "app", "exit_code_for", "main"]

# Exit codes of `run` for outcomes that are not the program's own exit code.
EXIT_USAGE = 2  # bad arguments, a request the server refuses, a daemon that will not start
EXIT_CODES: dict[RunStatus, int] = {
    RunStatus.INSTALL_FAILED: 122,
    RunStatus.OUTPUT_EXCEEDED: 123,
    RunStatus.TIMED_OUT: 124,
    RunStatus.ERROR: 125,  # infrastructure failure (as `docker run` uses 125)
    RunStatus.CANCELLED: 130,
    RunStatus.INTERRUPTED: 130,
    RunStatus.MEMORY_EXCEEDED: 137,
}
EXIT_INFRASTRUCTURE = EXIT_CODES[RunStatus.ERROR]
EXIT_NO_ENGINE = 69  # no Docker engine answers (EX_UNAVAILABLE); nothing was started
EXIT_AUTH = 77  # the daemon refused the token, or wants one (EX_NOPERM); nothing was started
CONTAINER_ID_LENGTH = 64  # what a sweep removed: the engine's full ids, or volume names

app = typer.Typer(
    help="Run untrusted Python for AI data agents in throwaway, locked-down containers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = RequestRejected.from_errors(exc.errors())
        err_console.print(f"[red]invalid settings:[/red] {problems}", highlight=False)
        raise typer.Exit(EXIT_INFRASTRUCTURE) from exc


def _logging(settings: Settings, level: str) -> None:
    """stderr logs at ``level``, as JSON lines when ``LOG_FORMAT=json``; notices that
    carry ``once`` (the image fallback) are said once per user (a marker in the cache)."""
    once = SayOnce(user_cache_dir() / "notices")
    configure_logging(level, json=settings.log_format == "json", filter=once)


def _fail(message: str, code: int) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _require_engine(settings: Settings) -> None:
    """Stop before any work, with what to do, when no Docker engine answers."""
    try:
        connect(settings).close()
    except DockerUnavailable as exc:
        err_console.print(
            f"[red]error:[/red] {escape(exc.message)}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(EXIT_NO_ENGINE) from exc


def _read_code(file: str) -> str:
    if file == "-":
        return sys.stdin.read()
    try:
        return Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"cannot read {file}: {exc}", EXIT_USAGE) from exc


def _requirements(requirements_file: Path | None, specs: list[str]) -> list[str]:
    reqs: list[str] = []
    if requirements_file is not None:
        try:
            reqs += parse_requirements_text(requirements_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise _fail(f"{requirements_file}: {exc}", EXIT_USAGE) from exc
    return reqs + specs


def _default_destination(local: str) -> str:
    """LOCAL itself when it is relative and stays below here (``./a//b.csv`` is
    ``a/b.csv``), else its name (``../x.csv`` and ``/tmp/x.csv`` are ``x.csv``)."""
    try:
        return normalise_relative_path(PurePath(local).as_posix())
    except ValueError:
        return PurePath(local).name


def _input_files(specs: list[str]) -> list[InputFile]:
    """``LOCAL[:DEST]`` pairs; DEST defaults to `_default_destination` of LOCAL."""
    files = []
    for spec in specs:
        local, sep, dest = spec.partition(":")
        path = Path(local)
        if not sep:
            dest = _default_destination(local)
        try:
            files.append(InputFile.from_bytes(dest, path.read_bytes()))
        except OSError as exc:
            raise _fail(f"--file {spec}: cannot read {local}: {exc.strerror}", EXIT_USAGE) from exc
        except ValidationError as exc:
            reason = RequestRejected.from_errors(exc.errors()).reason
            raise _fail(f"--file {spec}: {reason}", EXIT_USAGE) from exc
    return files


def _env_pairs(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise _fail(f"--env {pair!r}: expected NAME=VALUE", EXIT_USAGE)
        env[name] = value
    return env


def exit_code_for(result: RunResult) -> int:
    """The process exit code `run` uses for ``result`` (documented above)."""
    if result.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        code = result.exit_code if result.exit_code is not None else 1
        return 128 - code if code < 0 else min(code, 255)  # killed by signal N: 128 + N
    return EXIT_CODES[result.status]


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


def _client(server: str, settings: Settings, token: str | None = None) -> Client:
    if token is None and settings.token is not None:
        token = settings.token.get_secret_value()
    return Client(server, token=token)


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
        raise _fail(f"--output-dir {path}: exists and is not a directory", EXIT_USAGE)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail(f"--output-dir {path}: cannot create it: {exc.strerror}", EXIT_USAGE) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise _fail(f"--output-dir {path}: not writable", EXIT_USAGE)
    return path


def _auth_hint(exc: Unauthorized, token: object) -> str:
    if token:
        return f"{exc}; the daemon does not accept this token (--token or AI_DATA_AGENT_TOKEN)"
    return f"{exc}; the daemon wants a token: set AI_DATA_AGENT_TOKEN (or pass --token)"


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


@app.command()
def run(
    file: Annotated[str, typer.Argument(help="Python file to run, or - for stdin.")] = "-",
    requirements_file: Annotated[
        Path | None, typer.Option("-r", "--requirements", help="A requirements.txt file.")
    ] = None,
    package: Annotated[
        list[str] | None, typer.Option("-p", "--package", help="A requirement (repeatable).")
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds the code may run.")] = None,
    memory: Annotated[int | None, typer.Option(help="Memory limit in MiB.")] = None,
    cpus: Annotated[float | None, typer.Option(help="CPU limit (cores).")] = None,
    network: Annotated[bool, typer.Option(help="Network for the code (if allowed).")] = False,
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="NAME=VALUE for the code (repeatable).")
    ] = None,
    file_specs: Annotated[
        list[str] | None,
        typer.Option(
            "--file",
            "-f",
            metavar="LOCAL[:DEST]",
            help="An input file, placed at DEST under the code's working directory (repeatable).",
        ),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Write the files the code leaves in outputs/ here."),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Run on this daemon instead of the local engine (default: the "
            "AI_DATA_AGENT_SERVER variable).",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            metavar="TOKEN",
            help="Bearer token for --server (default: the AI_DATA_AGENT_TOKEN variable, "
            "which keeps it out of the process list).",
        ),
    ] = None,
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
    settings = _settings()
    _logging(settings, settings.log_level if verbose else "WARNING")
    try:
        request = RunRequest(
            code=_read_code(file),
            requirements=_requirements(requirements_file, package or []),
            timeout_s=timeout,
            memory_mb=memory,
            cpus=cpus,
            network=network,
            env=_env_pairs(env or []),
            files=_input_files(file_specs or []),
        )
    except ValidationError as exc:
        raise _fail(str(RequestRejected.from_errors(exc.errors())), EXIT_USAGE) from exc
    output_dir = _output_directory(output_dir)
    server = server or settings.server
    if server is None:
        _require_engine(settings)
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
            with _client(server, settings, token) as client:
                return _run_remote(client, request, progress, output_dir)
    except KeyboardInterrupt as exc:
        progress.stop()
        where = "the sandbox was removed" if server is None else "the run was cancelled"
        err_console.print(f"[red]stopped[/red] by {exc}: {where}", highlight=False)
        raise typer.Exit(stop_code(exc)) from None
    except Unauthorized as exc:
        raise _fail(_auth_hint(exc, token or settings.token), EXIT_AUTH) from exc
    except RequestRejected as exc:  # here or at the daemon, by rule or by size
        raise _fail(str(exc), EXIT_USAGE) from exc
    except AiDataAgentError as exc:
        raise _fail(str(exc), EXIT_INFRASTRUCTURE) from exc
    finally:
        progress.stop()


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on; beyond loopback, API tokens are required.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Listen beyond loopback without API tokens.")
    ] = False,
    with_worker: Annotated[
        bool,
        typer.Option(
            "--with-worker",
            help="With AI_DATA_AGENT_DATABASE_URL: also execute runs on this host's engine.",
        ),
    ] = False,
) -> None:
    """Run the HTTP daemon (POST /v1/runs, /readyz, /metrics, ...) until SIGTERM.

    With AI_DATA_AGENT_DATABASE_URL (postgresql://...) it is a cluster's API node:
    it admits and answers, and executes only with --with-worker (docs/scale-out.md).
    """
    from ai_data_agent.service.server import serve as serve_forever

    settings = _settings()
    if with_worker and not settings.clustered:
        raise _fail(
            "--with-worker needs AI_DATA_AGENT_DATABASE_URL (one node executes anyway)", EXIT_USAGE
        )
    _require_postgres(settings)
    try:
        # serve configures its own logging (LOG_LEVEL, LOG_FORMAT).
        cluster = {"with_worker": True} if with_worker else {}
        serve_forever(settings, host=host, port=port, insecure=insecure, **cluster)
    except ConfigurationError as exc:
        raise _fail(str(exc), EXIT_USAGE) from exc


@app.command()
def mcp(
    server: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Run sandboxes on this daemon instead of the local engine "
            "(default: AI_DATA_AGENT_SERVER).",
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Read the daemon's bearer token from FILE (default: AI_DATA_AGENT_TOKEN).",
        ),
    ] = None,
) -> None:
    """Serve the sandbox as MCP tools on stdin/stdout, for Claude, Cursor and other agents."""
    from ai_data_agent.mcp import EXTRA_HINT, available

    if not available():
        raise _fail(EXTRA_HINT, EXIT_USAGE)
    from ai_data_agent.mcp.stdio import serve_stdio

    settings = _settings()
    configure_logging(settings.log_level)  # stderr: stdout carries the protocol
    server = server or settings.server
    token = settings.token.get_secret_value() if settings.token is not None else None
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"cannot read {token_file}: {exc}", EXIT_USAGE) from exc
    if server is None:
        _require_engine(settings)
    try:
        serve_stdio(settings, server=server, token=token)
    except AiDataAgentError as exc:
        raise _fail(str(exc), EXIT_INFRASTRUCTURE) from exc


@app.command()
def worker(
    host: Annotated[
        str, typer.Option(help="Address of /healthz, /readyz and /metrics (never runs).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of those.")] = 8001,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Listen beyond loopback without API tokens.")
    ] = False,
) -> None:
    """Execute a cluster's queued runs and session calls on this host's engine, until SIGTERM.

    Needs AI_DATA_AGENT_DATABASE_URL; runs reach it only through that database.
    """
    from ai_data_agent.service.cluster.worker_app import run_worker

    settings = _settings()
    if not settings.clustered:
        raise _fail("a worker needs AI_DATA_AGENT_DATABASE_URL (postgresql://...)", EXIT_USAGE)
    _require_postgres(settings)
    _require_engine(settings)
    try:
        run_worker(settings, host=host, port=port, insecure=insecure)
    except ConfigurationError as exc:
        raise _fail(str(exc), EXIT_USAGE) from exc


def _require_postgres(settings: Settings) -> None:
    """With a database URL, the PostgreSQL driver must be installed."""
    if not settings.clustered:
        return
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise _fail(
            "AI_DATA_AGENT_DATABASE_URL needs the PostgreSQL driver: "
            "pip install 'ai-data-agent[postgres]'",
            EXIT_USAGE,
        ) from exc


@app.command()
def doctor() -> None:
    """Check this machine end to end; exit non-zero on any FAIL."""
    from ai_data_agent.doctor import print_report, run_checks

    settings = _settings()
    _logging(settings, "WARNING")
    _require_engine(settings)
    checks = run_checks(settings)
    print_report(checks, Console())
    raise typer.Exit(0 if all(c.ok for c in checks) else 1)


cache_app = typer.Typer(help="The environment cache: requirement sets installed once.")
app.add_typer(cache_app, name="cache")
app.add_typer(session_app, name="session")
app.command("repl")(repl)


def _env_cache(settings: Settings) -> EnvCache:
    executor = Executor(settings)
    if executor.env_cache is None:
        raise _fail("the environment cache is off (AI_DATA_AGENT_INSTALL_MODE=per_run)", EXIT_USAGE)
    _require_engine(settings)
    return executor.env_cache


@cache_app.command("list")
def cache_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Cached environments, most recently used first."""
    settings = _settings()
    _logging(settings, "WARNING")
    envs = _env_cache(settings).index.all()
    if as_json:
        for env in envs:
            line = {
                "key": env.key,
                "requirements": env.requirements,
                "size_bytes": env.size_bytes,
                "packages": [p.model_dump() for p in env.packages],
                "installer": env.installer,
                "created_at": env.created_at,
                "last_used_at": env.last_used_at,
            }
            typer.echo(json.dumps(line))
        return
    table = Table("key", "requirements", "packages", "size", "last used")
    for env in envs:
        table.add_row(
            env.key[:12],
            " ".join(env.requirements),
            str(len(env.packages)),
            f"{env.size_bytes / 1e6:.1f} MB",
            time.strftime("%Y-%m-%d %H:%M", time.localtime(env.last_used_at)),
        )
    Console().print(table)


@cache_app.command("warm")
def cache_warm(
    package: Annotated[
        list[str] | None, typer.Option("-p", "--package", help="A requirement (repeatable).")
    ] = None,
    requirements_file: Annotated[
        Path | None, typer.Option("-r", "--requirements", help="A requirements.txt file.")
    ] = None,
) -> None:
    """Install a requirement set into the cache now, so that a first run of it is a cache hit."""
    settings = _settings()
    _logging(settings, "WARNING")
    requirements = _requirements(requirements_file, package or [])
    if not requirements:
        raise _fail("name requirements with -p or -r", EXIT_USAGE)
    cache = _env_cache(settings)
    try:
        image = cache.backend.resolve_image()
        outcome = cache.get_or_install(requirements, image, "cache-warm")
    except AiDataAgentError as exc:
        raise _fail(str(exc), EXIT_INFRASTRUCTURE) from exc
    finally:
        cache.close()
    if isinstance(outcome, InstallFailure):
        raise _fail(outcome.error, EXIT_CODES[RunStatus.INSTALL_FAILED])
    env = outcome.env
    state = "already cached" if outcome.hit else f"installed in {env.install_s:.1f} s"
    typer.echo(
        f"{env.key[:12]} {state}: " + " ".join(f"{p.name}=={p.version}" for p in env.packages)
    )


@cache_app.command("prune")
def cache_prune(
    everything: Annotated[bool, typer.Option("--all", help="Remove every environment.")] = False,
    key: Annotated[
        list[str] | None, typer.Option("--key", help="Remove this one (a key or its prefix).")
    ] = None,
) -> None:
    """Evict environments beyond the size and age bounds (or the ones named)."""
    settings = _settings()
    _logging(settings, settings.log_level)
    cache = _env_cache(settings)
    try:
        if everything or key:
            known = [env.key for env in cache.index.all()]
            doomed = (
                known
                if everything
                else [k for k in known if any(k.startswith(p) for p in key or [])]
            )
            removed = cache.prune(keys=doomed)
        else:
            removed = cache.prune_to_bounds()
    except AiDataAgentError as exc:
        raise _fail(str(exc), EXIT_INFRASTRUCTURE) from exc
    typer.echo(json.dumps({"removed": removed}))


@app.command()
def sweep(
    all_controllers: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Remove every sandbox whose controller is not provably alive, not only "
            "expired ones and those of dead controllers.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="With --all, remove live controllers' sandboxes too (their runs fail)."
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"removed": [...]} instead of a table.')
    ] = False,
) -> None:
    """Remove sandbox containers left behind by dead controllers.

    Sandboxes of live controllers (a daemon, another `run`) are spared, even with
    --all, unless --force is given too.
    """
    from ai_data_agent.executor.backend import SweepRule
    from ai_data_agent.executor.docker_backend import DockerBackend

    settings = _settings()
    _logging(settings, settings.log_level)
    _require_engine(settings)
    try:
        rule = SweepRule(all_controllers=all_controllers, force=force)
        removed = DockerBackend(settings).sweep(rule)
    except AiDataAgentError as exc:
        raise _fail(str(exc), EXIT_INFRASTRUCTURE) from exc
    if as_json:
        typer.echo(json.dumps({"removed": removed}))
        return
    _print_removed(removed)


def _print_removed(removed: list[str]) -> None:
    """The sweep's table: containers by short id, volumes by name."""
    console = Console()
    if not removed:
        console.print("nothing to remove", highlight=False)
        return
    table = Table("removed", "id or name")
    for name in removed:
        container = len(name) == CONTAINER_ID_LENGTH and all(c in "0123456789abcdef" for c in name)
        table.add_row("container" if container else "volume", name[:12] if container else name)
    console.print(table)


def main() -> None:
    """Console-script entry point."""
    app()
