"""The long-running commands: ``serve`` (the HTTP daemon), ``mcp`` (on stdio), ``worker``.

    ai-data-agent serve --host 0.0.0.0 --port 8000
    ai-data-agent mcp --server http://127.0.0.1:8000 --token-file token.txt   # docs/mcp.md
    AI_DATA_AGENT_DATABASE_URL=postgresql://... ai-data-agent worker   # a cluster's worker

Each runs until it is stopped. What it serves with (uvicorn and FastAPI, the MCP
SDK, psycopg) is imported only when it starts, so that ``run`` and ``--help`` stay
quick. `ai_data_agent.cli.app` registers these functions as its commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ai_data_agent.cli.common import fail, load_settings, require_engine
from ai_data_agent.cli.exits import EXIT_INFRASTRUCTURE, EXIT_USAGE
from ai_data_agent.errors import AiDataAgentError, ConfigurationError
from ai_data_agent.logs import configure_logging
from ai_data_agent.settings import Settings

__all__ = ["mcp", "serve", "worker"]


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

    settings = load_settings()
    if with_worker and not settings.clustered:
        raise fail(
            "--with-worker needs AI_DATA_AGENT_DATABASE_URL (one node executes anyway)", EXIT_USAGE
        )
    _require_postgres(settings)
    try:
        # serve configures its own logging (LOG_LEVEL, LOG_FORMAT).
        cluster = {"with_worker": True} if with_worker else {}
        serve_forever(settings, host=host, port=port, insecure=insecure, **cluster)
    except ConfigurationError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc


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
        raise fail(EXTRA_HINT, EXIT_USAGE)
    from ai_data_agent.mcp.stdio import serve_stdio

    settings = load_settings()
    configure_logging(settings.log_level)  # stderr: stdout carries the protocol
    server = server or settings.server
    token = settings.token.get_secret_value() if settings.token is not None else None
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"cannot read {token_file}: {exc}", EXIT_USAGE) from exc
    if server is None:
        require_engine(settings)
    try:
        serve_stdio(settings, server=server, token=token)
    except AiDataAgentError as exc:
        raise fail(str(exc), EXIT_INFRASTRUCTURE) from exc


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

    settings = load_settings()
    if not settings.clustered:
        raise fail("a worker needs AI_DATA_AGENT_DATABASE_URL (postgresql://...)", EXIT_USAGE)
    _require_postgres(settings)
    require_engine(settings)
    try:
        run_worker(settings, host=host, port=port, insecure=insecure)
    except ConfigurationError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc


def _require_postgres(settings: Settings) -> None:
    """With a database URL, the PostgreSQL driver must be installed."""
    if not settings.clustered:
        return
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise fail(
            "AI_DATA_AGENT_DATABASE_URL needs the PostgreSQL driver: "
            "pip install 'ai-data-agent[postgres]'",
            EXIT_USAGE,
        ) from exc
