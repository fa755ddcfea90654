"""The MCP server over a `SandboxService`: tools, file resources, instructions.

    server, tools = build_server(sandbox, ToolOptions(default_session=True, ...))
    await server.run_stdio_async()          # or its HTTP app, in the daemon
    await tools.close_default()

Resources (templates, read on demand)::

    ai-data-agent://sessions/{session_id}/files/{path}   a file under a session's directory
    ai-data-agent://runs/{run_id}/artifacts/{path}       a file a run left under outputs/

The SDK rejects ``..`` and absolute paths in them before we see the request;
the session and run paths are checked again by the service that reads them.
"""

from __future__ import annotations

from collections.abc import Awaitable

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from ai_data_agent import __version__
from ai_data_agent.errors import AiDataAgentError
from ai_data_agent.mcp.dataset_tools import DatasetTools
from ai_data_agent.mcp.sandbox import SandboxService
from ai_data_agent.mcp.tools import SandboxTools, ToolOptions

__all__ = ["INSTRUCTIONS", "build_server"]

INSTRUCTIONS = (
    "ai-data-agent runs Python for data analysis in locked-down sandboxes (no network for "
    "the code). Use run_python for code; create_session when work spans several calls "
    "(variables persist); upload_file and read_file to move files in and out; "
    "list_datasets and describe_dataset for the data kept on the server, mounted read-only "
    "at /data/<name> with `datasets`. Results show the end of stdout/stderr, the last "
    "expression's value, tracebacks and figures."
)
OCTET_STREAM = "application/octet-stream"


async def _read(call: Awaitable[bytes]) -> bytes:
    """The bytes, or the service's refusal as the resource error a client sees."""
    try:
        return await call
    except AiDataAgentError as exc:
        raise ResourceError(exc.message) from exc


def build_server(sandbox: SandboxService, options: ToolOptions) -> tuple[MCPServer, SandboxTools]:
    """An `MCPServer` with the tools and resources over ``sandbox``."""
    server: MCPServer = MCPServer(
        "ai-data-agent",
        title="ai-data-agent",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )
    tools = SandboxTools(sandbox, options)
    tools.register(server)
    DatasetTools(sandbox).register(server)

    @server.resource(
        "ai-data-agent://sessions/{session_id}/files/{+path}",
        name="session_file",
        description="A file under a session's working directory.",
        mime_type=OCTET_STREAM,
    )
    async def session_file(session_id: str, path: str) -> bytes:
        return await _read(sandbox.download(session_id, path))

    @server.resource(
        "ai-data-agent://runs/{run_id}/artifacts/{+path}",
        name="run_artifact",
        description="A file a run left under outputs/ (path relative to outputs/).",
        mime_type=OCTET_STREAM,
    )
    async def run_artifact(run_id: str, path: str) -> bytes:
        return await _read(sandbox.artifact(run_id, path))

    return server, tools
