"""``/mcp`` for the daemon, with the MCP SDK loaded at the first request to it.

    endpoint = LazyEndpoint(node)
    app.router.routes.append(endpoint.route)
    async with endpoint.running():      # in the app's lifespan: cheap until used
        ...

The SDK and its dependencies take tens of megabytes; a daemon nobody reaches
over MCP should not hold them. The first request builds the endpoint
(`http.McpEndpoint`) and starts the SDK's session manager in the lifespan's
task group, where it runs until the daemon stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ai_data_agent.service.node import ServiceNode

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from ai_data_agent.service.mcp.http import McpEndpoint

__all__ = ["PATH", "LazyEndpoint"]

PATH = "/mcp"


class LazyEndpoint:
    def __init__(self, node: ServiceNode) -> None:
        self.node = node
        self.route = Route(PATH, endpoint=self)
        self._endpoint: McpEndpoint | None = None
        self._lock = anyio.Lock()
        self._group: TaskGroup | None = None
        self._stop = anyio.Event()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Where the SDK's session manager runs once it is loaded (the app's lifespan)."""
        async with anyio.create_task_group() as group:
            self._group = group
            try:
                yield
            finally:
                self._stop.set()  # the manager, if it started, ends; the group then exits

    async def _loaded(self) -> McpEndpoint:
        async with self._lock:
            if self._endpoint is None:
                from ai_data_agent.service.mcp.http import McpEndpoint

                endpoint = McpEndpoint(self.node)
                assert self._group is not None, "/mcp is served only inside the app's lifespan"
                await self._group.start(self._serve, endpoint)
                self._endpoint = endpoint
            return self._endpoint

    async def _serve(
        self, endpoint: McpEndpoint, *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        async with endpoint.running():
            task_status.started()
            await self._stop.wait()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = await self._loaded()
        await endpoint.route.app(scope, receive, send)
