"""The daemon's ``/mcp``: the MCP tools (`ai_data_agent.mcp`) over this node's own runs and sessions.

    endpoint = mcp_endpoint(node)            # None without the mcp extra
    app.router.routes.append(endpoint.route)
    async with endpoint.running(): ...       # in the app's lifespan

A request to ``/mcp`` meets, in order: `lazy` (the SDK is loaded at the first
request, not at the daemon's start), `http` (the bearer token, the Host
allow-list, the SDK's streamable HTTP transport), the tools of
`ai_data_agent.mcp`, and `in_daemon` (their `SandboxService` over the node: a run is
admitted, recorded and counted as a ``POST /v1/runs``, a session is one of
``/v1/sessions``). The same on one node and on a cluster's API node.
"""

from __future__ import annotations

from ai_data_agent.mcp import available
from ai_data_agent.service.mcp.lazy import LazyEndpoint
from ai_data_agent.service.node import ServiceNode

__all__ = ["mcp_endpoint"]


def mcp_endpoint(node: ServiceNode) -> LazyEndpoint | None:
    """The node's ``/mcp`` endpoint (the SDK loads at its first request), or None
    without the ``mcp`` extra."""
    return LazyEndpoint(node) if available() else None
