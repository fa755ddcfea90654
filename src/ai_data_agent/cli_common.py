"""What the ``ai-data-agent`` commands share: exit codes, consoles, settings, inputs, failing.

    from ai_data_agent.cli_common import EXIT_USAGE, fail, load_settings, setup_logging

    def command(server: str | None = None) -> None:
        settings = load_settings()  # invalid settings: the problems, then exit 125
        setup_logging(settings, "WARNING")
        if (server or settings.server) is None:
            raise fail("pass --server URL", EXIT_USAGE)  # "error: ..." on stderr, exit 2

A command stops by raising the `typer.Exit` that `fail` returns (or that
`load_settings`, `require_engine` and the input readers raise), after saying why
on stderr; no other exception is meant to leave a command.
"""

from __future__ import annotations

import sys
from pathlib import Path, PurePath

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from ai_data_agent.client import Client
from ai_data_agent.errors import DockerUnavailable, RequestRejected, Unauthorized
from ai_data_agent.executor.docker import connect
from ai_data_agent.logs import SayOnce, configure_logging
from ai_data_agent.models import InputFile, RunStatus, parse_requirements_text
from ai_data_agent.paths import normalise_relative_path
from ai_data_agent.settings import Settings, user_cache_dir

__all__ = [
    "EXIT_AUTH",
    "EXIT_CODES",
    "EXIT_INFRASTRUCTURE",
    "EXIT_NO_ENGINE",
    "EXIT_USAGE",
    "auth_hint",
    "client_for",
    "err_console",
    "fail",
    "input_files",
    "load_settings",
    "out_console",
    "read_code",
    "read_requirements",
    "require_engine",
    "setup_logging",
]

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

out_console = Console()
err_console = Console(stderr=True)


def load_settings() -> Settings:
    """The settings from the environment; invalid ones are said, then exit 125."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = RequestRejected.from_errors(exc.errors())
        err_console.print(f"[red]invalid settings:[/red] {problems}", highlight=False)
        raise typer.Exit(EXIT_INFRASTRUCTURE) from exc


def setup_logging(settings: Settings, level: str) -> None:
    """stderr logs at ``level``, as JSON lines when ``LOG_FORMAT=json``; notices that
    carry ``once`` (the image fallback) are said once per user (a marker in the cache)."""
    once = SayOnce(user_cache_dir() / "notices")
    configure_logging(level, json=settings.log_format == "json", filter=once)


def fail(message: str, code: int) -> typer.Exit:
    """Say ``error: message`` on stderr; the caller raises the exit this returns."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def require_engine(settings: Settings) -> None:
    """Stop before any work, with what to do, when no Docker engine answers."""
    try:
        connect(settings).close()
    except DockerUnavailable as exc:
        err_console.print(
            f"[red]error:[/red] {escape(exc.message)}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(EXIT_NO_ENGINE) from exc


def read_code(file: str) -> str:
    """The code in ``file``, or on stdin for ``-``."""
    if file == "-":
        return sys.stdin.read()
    try:
        return Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read {file}: {exc}", EXIT_USAGE) from exc


def read_requirements(requirements_file: Path | None, specs: list[str]) -> list[str]:
    """The requirements of ``-r FILE`` (if any), then those of ``-p``."""
    reqs: list[str] = []
    if requirements_file is not None:
        try:
            reqs += parse_requirements_text(requirements_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise fail(f"{requirements_file}: {exc}", EXIT_USAGE) from exc
    return reqs + specs


def _default_destination(local: str) -> str:
    """LOCAL itself when it is relative and stays below here (``./a//b.csv`` is
    ``a/b.csv``), else its name (``../x.csv`` and ``/tmp/x.csv`` are ``x.csv``)."""
    try:
        return normalise_relative_path(PurePath(local).as_posix())
    except ValueError:
        return PurePath(local).name


def input_files(specs: list[str]) -> list[InputFile]:
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
            raise fail(f"--file {spec}: cannot read {local}: {exc.strerror}", EXIT_USAGE) from exc
        except ValidationError as exc:
            reason = RequestRejected.from_errors(exc.errors()).reason
            raise fail(f"--file {spec}: {reason}", EXIT_USAGE) from exc
    return files


def client_for(server: str, settings: Settings, token: str | None = None) -> Client:
    """A client of ``server``, with ``token`` or else the settings' token."""
    if token is None and settings.token is not None:
        token = settings.token.get_secret_value()
    return Client(server, token=token)


def auth_hint(exc: Unauthorized, token: object) -> str:
    """What to do about a refused (or missing) token."""
    if token:
        return f"{exc}; the daemon does not accept this token (--token or AI_DATA_AGENT_TOKEN)"
    return f"{exc}; the daemon wants a token: set AI_DATA_AGENT_TOKEN (or pass --token)"
