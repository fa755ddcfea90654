"""``ai-data-agent mcp``: the MCP server on stdin/stdout, for an agent host that starts it.

    serve_stdio(settings)                                   # sandboxes on the local engine
    serve_stdio(settings, server="http://host:8000", token="s3cret")   # on a daemon

stdout carries the protocol and nothing else: logs go to stderr. Calls
without a ``session_id`` share one session of this process, started at the
first such call and closed when the process ends (stdin closed, SIGTERM,
SIGINT or SIGHUP); with the local engine, every session the process started
is closed then and its container removed.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator

import anyio

from ai_data_agent.client import Client
from ai_data_agent.executor import Executor
from ai_data_agent.mcp.local import LocalSandbox
from ai_data_agent.mcp.remote import RemoteSandbox
from ai_data_agent.mcp.sandbox import SandboxService
from ai_data_agent.mcp.server import build_server
from ai_data_agent.mcp.tools import ToolOptions
from ai_data_agent.settings import Settings

__all__ = ["serve_stdio"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def serve_stdio(settings: Settings, server: str | None = None, token: str | None = None) -> None:
    """Serve MCP on stdio until stdin closes or a stop signal arrives (blocking).

    Raises:
        AiDataAgentError: ``server`` cannot be reached or refuses the token.
    """
    anyio.run(_serve, settings, server, token)


async def _sandbox(settings: Settings, server: str | None, token: str | None) -> SandboxService:
    if server is None:
        return LocalSandbox(settings, Executor(settings))
    client = Client(server, token=token)
    try:
        return await RemoteSandbox.connect(client)
    except BaseException:
        client.close()
        raise


async def _stop_on_signal(signals: AsyncIterator[int], scope: anyio.CancelScope) -> None:
    async for _ in signals:
        scope.cancel()
        return


async def _serve(settings: Settings, server: str | None, token: str | None) -> None:
    sandbox = await _sandbox(settings, server, token)
    options = ToolOptions(
        default_session=True,
        max_images=settings.mcp_max_images,
        cell_timeout_s=settings.mcp_cell_timeout_s,
    )
    mcp_server, tools = build_server(sandbox, options)
    # The receiver stays open through the cleanup: a host that closes stdin and then
    # sends SIGTERM (the MCP SDK does after 2 s) must not cut the container removals.
    with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(_stop_on_signal, signals, group.cancel_scope)
                await mcp_server.run_stdio_async()
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await tools.close_default()
                finally:
                    await sandbox.aclose()
