"""The sandbox as MCP tools, for agents: over stdio (``ai-data-agent mcp``) and at ``/mcp``.

    ai-data-agent mcp                              # stdio, sandboxes on the local engine
    ai-data-agent mcp --server http://host:8000    # stdio, sandboxes on a daemon
    POST /mcp                                      # the daemon's streamable HTTP endpoint

Needs the optional ``mcp`` extra (``pip install 'ai-data-agent[mcp]'``); without
it the daemon starts all the same, without ``/mcp``. A tool call meets, in
order: `server` (the SDK's server, its tools and resources), `tools` (the
tools, with `descriptions`, `files` for file arguments and `progress` for live
output), then a `sandbox.SandboxService`, the one interface the tools know, and
`results` shapes what comes back. Two implementations of `SandboxService` live here:
the library on the local engine (`local`) and a daemon over HTTP (`remote`);
`stdio` serves either on stdin/stdout. The daemon's own, over its dispatcher
and sessions, is part of the daemon (`ai_data_agent.service.mcp`): this
package knows nothing of the service. See docs/mcp.md.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRA_HINT", "available"]

EXTRA_HINT = "the MCP server needs the mcp extra: pip install 'ai-data-agent[mcp]'"


def available() -> bool:
    """Whether the MCP SDK is installed (the ``mcp`` extra)."""
    return importlib.util.find_spec("mcp") is not None
