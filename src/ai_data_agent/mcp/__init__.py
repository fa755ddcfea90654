"""The sandbox as MCP tools, for agents: over stdio (``ai-data-agent mcp``) and at ``/mcp``.

    ai-data-agent mcp                              # stdio, sandboxes on the local engine
    ai-data-agent mcp --server http://host:8000    # stdio, sandboxes on a daemon
    POST /mcp                                      # the daemon's streamable HTTP endpoint

Needs the optional ``mcp`` extra (``pip install 'ai-data-agent[mcp]'``); without
it the daemon starts all the same, without ``/mcp``. One tool layer (`tools`)
over a small interface (`sandbox.Sandbox`) with three implementations: the
library on the local engine (`local`), the daemon's own dispatcher and session
manager (`in_daemon`), and a daemon over HTTP (`remote`). See docs/mcp.md.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ai_data_agent.mcp.lazy import LazyEndpoint
    from ai_data_agent.service.node import ServiceNode

__all__ = ["available", "daemon_endpoint"]

EXTRA_HINT = "the MCP server needs the mcp extra: pip install 'ai-data-agent[mcp]'"


def available() -> bool:
    """Whether the MCP SDK is installed (the ``mcp`` extra)."""
    return importlib.util.find_spec("mcp") is not None


def daemon_endpoint(daemon: ServiceNode) -> LazyEndpoint | None:
    """The daemon's ``/mcp`` endpoint (the SDK loads at its first request), or None
    without the ``mcp`` extra."""
    if not available():
        return None
    from ai_data_agent.mcp.lazy import LazyEndpoint

    return LazyEndpoint(daemon)
