"""What a route asks FastAPI for: its node, the request's `Principal`, an admin.

    @router.get("/runs/{run_id}")
    async def get_run(run_id: str, node: NodeDep, principal: PrincipalDep) -> RunRecord: ...

`principal_of` is the one place a request's bearer token becomes a principal
(`auth.TokenAuth`); ``/v1`` runs it for every route, and FastAPI hands the
same value to the routes that name `PrincipalDep`. It also leaves the
principal in ``request.state`` for the audit log (`audit_http`), as
`note_object` leaves the id of what a route created.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ai_data_agent.errors import Forbidden, Unauthorized
from ai_data_agent.service.node import ServiceNode
from ai_data_agent.tenant_models import Principal

__all__ = [
    "AdminDep",
    "NodeDep",
    "PrincipalDep",
    "bearer",
    "node_of",
    "note_object",
    "principal_of",
]

bearer = HTTPBearer(
    auto_error=False,
    description="A tenant's token (`ai-data-agent token new`) or one of AI_DATA_AGENT_API_TOKENS.",
)


def node_of(request: Request) -> ServiceNode:
    return cast(ServiceNode, request.app.state.daemon)


NodeDep = Annotated[ServiceNode, Depends(node_of)]


def principal_of(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Principal:
    """The request's principal. Sync, so FastAPI runs it in a thread: it reads the store.

    Raises:
        Unauthorized: no acceptable token. NotReady: the tokens cannot be read.
    """
    auth, header = node_of(request).auth, request.headers.get("authorization")
    try:
        principal = auth.principal(header)
    except Unauthorized:
        request.state.refused = auth.holder(header)  # a revoked or expired token, named
        raise
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(principal_of)]


def admin_of(principal: PrincipalDep) -> Principal:
    """The principal, when it is an admin.

    Raises:
        Forbidden: an agent tenant's token.
    """
    if not principal.is_admin:
        raise Forbidden(f"tenant {principal.tenant!r} is not an admin")
    return principal


AdminDep = Annotated[Principal, Depends(admin_of)]


def note_object(request: Request, object_id: str) -> None:
    """Name what this request created (a run, a session, a token) in its audit entry."""
    request.state.audit_object = object_id
