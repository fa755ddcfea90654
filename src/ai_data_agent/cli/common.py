"""What the ``ai-data-agent`` commands share: consoles, settings, logging, failing, the engine
check and the daemon's client.

    from ai_data_agent.cli.common import fail, load_settings, setup_logging
    from ai_data_agent.cli.exits import EXIT_USAGE

    def command(server: str | None = None) -> None:
        settings = load_settings()  # invalid settings: the problems, then exit 125
        setup_logging(settings, "WARNING")
        if (server or settings.server) is None:
            raise fail("pass --server URL", EXIT_USAGE)  # "error: ..." on stderr, exit 2

A command stops by raising the `typer.Exit` that `fail` or `exit_for` returns (or
that `load_settings`, `require_engine` and the input readers raise), after saying
why on stderr; no other exception is meant to leave a command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from ai_data_agent.cli.exits import (
    EXIT_AUTH,
    EXIT_BUSY,
    EXIT_INFRASTRUCTURE,
    EXIT_NO_ENGINE,
    EXIT_USAGE,
)
from ai_data_agent.client import Client
from ai_data_agent.errors import (
    AiDataAgentError,
    DockerUnavailable,
    Forbidden,
    NotFound,
    RequestRejected,
    SessionBusy,
    SessionError,
    SessionLimit,
    Unauthorized,
)
from ai_data_agent.executor.docker import connect
from ai_data_agent.logs import SayOnce, configure_logging
from ai_data_agent.settings import Settings, user_cache_dir

__all__ = [
    "auth_hint",
    "client_for",
    "err_console",
    "exit_for",
    "fail",
    "guarded",
    "load_settings",
    "out_console",
    "require_engine",
    "setup_logging",
    "working",
]

T = TypeVar("T")

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


def exit_for(exc: AiDataAgentError, token: object) -> typer.Exit:
    """`fail` for an error of the tree: 77 for the token, 75 busy (retry), 2 when it is
    the caller's to fix, else 125. ``token`` is the one sent, for what to do about it."""
    if isinstance(exc, Unauthorized):
        return fail(auth_hint(exc, token), EXIT_AUTH)
    if isinstance(exc, Forbidden):
        return fail(f"{exc}; this needs an admin's token", EXIT_AUTH)
    if isinstance(exc, SessionBusy | SessionLimit):
        return fail(str(exc), EXIT_BUSY)
    if isinstance(exc, RequestRejected | NotFound | SessionError):
        return fail(str(exc), EXIT_USAGE)
    return fail(str(exc), EXIT_INFRASTRUCTURE)


def guarded(call: Callable[[], T]) -> T:
    """``call()``; an error of the tree stops the command (`exit_for`, with the settings' token)."""
    try:
        return call()
    except AiDataAgentError as exc:
        raise exit_for(exc, load_settings().token) from exc


def require_engine(settings: Settings) -> None:
    """Stop before any work, with what to do, when no Docker engine answers."""
    try:
        connect(settings).close()
    except DockerUnavailable as exc:
        err_console.print(
            f"[red]error:[/red] {escape(exc.message)}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(EXIT_NO_ENGINE) from exc


@contextmanager
def working(label: str) -> Iterator[None]:
    """A spinner saying ``label`` on a terminal while the block runs; nothing elsewhere."""
    if not err_console.is_terminal:
        yield
        return
    with err_console.status(escape(label)):
        yield


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
