"""The ``ai-data-agent`` command: the `app` that gathers every subcommand, and `main`.

    ai-data-agent run analysis.py -p pandas --timeout 30
    ai-data-agent serve --host 0.0.0.0 --port 8000
    ai-data-agent mcp                     # MCP tools on stdio (the mcp extra; docs/mcp.md)
    AI_DATA_AGENT_DATABASE_URL=postgresql://... ai-data-agent worker   # a cluster's worker
    ai-data-agent session new -p pandas ; ai-data-agent repl
    ai-data-agent doctor ; ai-data-agent cache list ; ai-data-agent sweep
    ai-data-agent tenant add team-a ; ai-data-agent token new team-a ci ; ai-data-agent audit

The commands that need the local engine (``run`` without ``--server``,
``doctor``, ``sweep``, ``cache``, ``repl`` without ``--server``) check it first:
where no Docker engine answers, they print what to do and exit 69
(``EX_UNAVAILABLE`` of sysexits.h) before any work.
"""

from __future__ import annotations

import typer

from ai_data_agent.cli.admin import cache_app, doctor, sweep
from ai_data_agent.cli.repl import repl
from ai_data_agent.cli.run import run
from ai_data_agent.cli.serve import mcp, serve, worker
from ai_data_agent.cli.sessions import session_app
from ai_data_agent.cli.tenants import audit, tenant_app, token_app

__all__ = ["app", "main"]

app = typer.Typer(
    help="Run untrusted Python for AI data agents in throwaway, locked-down containers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(run)
app.command()(serve)
app.command()(mcp)
app.command()(worker)
app.command()(doctor)
app.command("repl")(repl)
app.command()(sweep)
app.add_typer(cache_app, name="cache")
app.add_typer(session_app, name="session")
app.add_typer(tenant_app, name="tenant")
app.add_typer(token_app, name="token")
app.command()(audit)


def main() -> None:
    """Console-script entry point."""
    app()
