"""The daemon's ``/mcp``: streamable HTTP, behind the API's bearer tokens and a Host allow-list.

    endpoint = McpEndpoint(node)
    app.router.routes.append(endpoint.route)       # /mcp, every method
    async with endpoint.running():                 # in the app's lifespan
        ...

Requests are stateless by default (``mcp_stateless``): each POST stands alone,
answered with JSON unless the call streams (progress notifications), then as
Server-Sent Events. Before the SDK sees a request, its bearer token becomes a
`Principal` as for ``/v1`` (`TokenAuth`; 401 with ``WWW-Authenticate``), set
in `in_daemon.CALLER` for the tools (the SDK's tasks start in the request's
context and inherit it) and in the request's state for the audit log. With
MCP sessions (``mcp_stateless`` false) a session's tasks keep the principal of
the request that opened it, so a session is pinned to it: another principal's
request to it is 404.
The SDK then refuses a Host header outside ``mcp_allowed_hosts`` (421) and a
browser Origin outside them (403), against DNS rebinding. Bodies are capped
at ``max_body_bytes`` (by the app's middleware, and the SDK's own cap).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ai_data_agent.errors import AiDataAgentError, NotFound, Unauthorized
from ai_data_agent.mcp.server import build_server
from ai_data_agent.mcp.tools import ToolOptions
from ai_data_agent.service.auth import TokenAuth
from ai_data_agent.service.http_errors import error_response
from ai_data_agent.service.mcp.in_daemon import CALLER, DaemonSandbox
from ai_data_agent.service.node import ServiceNode
from ai_data_agent.settings import Settings
from ai_data_agent.tenant_models import Principal

__all__ = ["PATH", "McpEndpoint", "transport_security"]

PATH = "/mcp"
SESSION_HEADER = "mcp-session-id"
PINNED_SESSIONS = 10_000  # MCP sessions remembered with their principal (oldest forgotten)


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """The allowed Host (and Origin) values: each name with or without a port."""
    hosts = [h.lower() for h in settings.mcp_allowed_hosts]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[form for h in hosts for form in (h, f"{h}:*")],
        allowed_origins=[
            form
            for h in hosts
            for scheme in ("http", "https")
            for form in (f"{scheme}://{h}", f"{scheme}://{h}:*")
        ],
    )


class _TokenGuard:
    """ASGI: the request's principal in front of the MCP transport (see the module
    docstring)."""

    def __init__(self, app: ASGIApp, auth: TokenAuth) -> None:
        self.app = app
        self.auth = auth
        self._owners: OrderedDict[str, Principal] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        header = headers.get("authorization")
        try:
            # In a thread: the check may read the token file or the tenant store.
            principal = await anyio.to_thread.run_sync(self.auth.principal, header)
            self._check_pin(headers.get(SESSION_HEADER), principal)
        except AiDataAgentError as exc:  # Unauthorized (401), NotFound (404), NotReady (503)
            if isinstance(exc, Unauthorized):  # the audit entry names a known token
                holder = await anyio.to_thread.run_sync(self.auth.holder, header)
                scope.setdefault("state", {})["refused"] = holder
            await error_response(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        CALLER.set(principal)

        async def pinning(message: Message) -> None:
            if message["type"] == "http.response.start":
                found = Headers(raw=message.get("headers", [])).get(SESSION_HEADER)
                if found is not None and found not in self._owners:
                    self._owners[found] = principal
                    while len(self._owners) > PINNED_SESSIONS:
                        self._owners.popitem(last=False)
            await send(message)

        await self.app(scope, receive, pinning)

    def _check_pin(self, session_id: str | None, principal: Principal) -> None:
        """Raise `NotFound` when the MCP session was opened by another principal."""
        owner = self._owners.get(session_id) if session_id else None
        if owner is not None and owner != principal:
            raise NotFound("no such MCP session")


class McpEndpoint:
    """The MCP server over the node's own dispatcher and sessions, as one ASGI route."""

    def __init__(self, node: ServiceNode) -> None:
        settings = node.settings
        options = ToolOptions(
            default_session=False,
            max_images=settings.mcp_max_images,
            cell_timeout_s=settings.mcp_cell_timeout_s,
        )
        self.server, _ = build_server(DaemonSandbox(node), options)
        # Builds the SDK's session manager; its own Starlette app is not used.
        self.server.streamable_http_app(
            streamable_http_path=PATH,
            stateless_http=settings.mcp_stateless,
            json_response=False,  # JSON unless the call streams
            max_request_body_size=settings.max_body_bytes,
            transport_security=transport_security(settings),
        )
        self.manager: StreamableHTTPSessionManager = self.server.session_manager
        self.route = Route(PATH, endpoint=_TokenGuard(self.manager.handle_request, node.auth))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The SDK's session manager, for the app's lifespan (once per endpoint)."""
        async with self.manager.run():
            yield
