"""The admin's API: tenants, their tokens, and the audit log (an agent's token: 403).

GET    /v1/tenants               [Tenant]
POST   /v1/tenants               TenantCreate -> 201 Tenant
GET    /v1/tenants/{name}        Tenant
PATCH  /v1/tenants/{name}        TenantUpdate -> Tenant (role, quotas)
DELETE /v1/tenants/{name}        204; its tokens go, its runs and sessions stay
GET    /v1/tokens                [TokenInfo] (?tenant=), never a secret
POST   /v1/tokens                TokenCreate -> 201 NewToken: the secret, this once
DELETE /v1/tokens/{name}         TokenInfo, revoked: refused from the next request on
GET    /v1/audit                 AuditPage, newest first (?tenant=&action=&since=&until=
                                 &before=&limit=)
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from anyio.to_thread import run_sync
from fastapi import APIRouter, Query, Request, Response

from ai_data_agent.service.deps import AdminDep, NodeDep, note_object
from ai_data_agent.service.records import AuditQuery
from ai_data_agent.service.tenant_admin import TenantAdmin
from ai_data_agent.tenant_models import (
    AuditPage,
    NewToken,
    Tenant,
    TenantCreate,
    TenantUpdate,
    TokenCreate,
    TokenInfo,
)

__all__ = ["router"]

MAX_AUDIT_PAGE = 1000
_FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"description": "an agent tenant's token (`forbidden`)"}
}
router = APIRouter(tags=["tenants"], responses=_FORBIDDEN)


def _admin(node: NodeDep) -> TenantAdmin:
    return TenantAdmin(node.tenants)


@router.get("/tenants", summary="Every tenant, by name")
async def list_tenants(node: NodeDep, _: AdminDep) -> list[Tenant]:
    return await run_sync(_admin(node).tenants)


@router.post("/tenants", status_code=201, summary="Add a tenant")
async def add_tenant(body: TenantCreate, request: Request, node: NodeDep, _: AdminDep) -> Tenant:
    note_object(request, body.name)
    return await run_sync(_admin(node).add_tenant, body)


@router.get("/tenants/{name}", summary="A tenant")
async def get_tenant(name: str, node: NodeDep, _: AdminDep) -> Tenant:
    return await run_sync(_admin(node).tenant, name)


@router.patch("/tenants/{name}", summary="Change a tenant's role or quotas")
async def update_tenant(name: str, body: TenantUpdate, node: NodeDep, _: AdminDep) -> Tenant:
    """Each quota given replaces the stored one (null: unlimited); those not given stay."""
    return await run_sync(_admin(node).update_tenant, name, body)


@router.delete("/tenants/{name}", status_code=204, summary="Remove a tenant and its tokens")
async def remove_tenant(name: str, node: NodeDep, _: AdminDep) -> Response:
    """Its tokens are refused from the next request on; its runs and sessions stay, still
    under its name (an admin sees them)."""
    await run_sync(_admin(node).remove_tenant, name)
    return Response(status_code=204)


@router.get("/tokens", summary="Tokens (never their secrets)")
async def list_tokens(node: NodeDep, _: AdminDep, tenant: str | None = None) -> list[TokenInfo]:
    return await run_sync(_admin(node).tokens, tenant)


@router.post("/tokens", status_code=201, summary="Make a token; its secret is in this answer only")
async def new_token(body: TokenCreate, request: Request, node: NodeDep, _: AdminDep) -> NewToken:
    note_object(request, body.name)
    return await run_sync(_admin(node).new_token, body)


@router.delete("/tokens/{name}", summary="Revoke a token")
async def revoke_token(name: str, node: NodeDep, _: AdminDep) -> TokenInfo:
    """Refused from the next request on, on every node of a cluster."""
    return await run_sync(_admin(node).revoke, name)


@router.get("/audit", summary="The audit log, newest first")
async def read_audit(
    node: NodeDep,
    _: AdminDep,
    tenant: str | None = None,
    action: Annotated[
        str | None,
        Query(description="For example run.create; ending in a dot (egress.), a family."),
    ] = None,
    since: Annotated[datetime | None, Query(description="Entries at or after.")] = None,
    until: Annotated[datetime | None, Query(description="Entries before.")] = None,
    before: Annotated[int | None, Query(description="Page on: a `next_before`.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_PAGE)] = 100,
) -> AuditPage:
    """Every authenticated action, allowed or refused, with who, what and the answer."""
    query = AuditQuery.of(
        tenant=tenant, action=action, since=since, until=until, before=before, limit=limit
    )
    items = await run_sync(node.audit.query, query)
    more = len(items) == limit and items[-1].seq is not None
    return AuditPage(items=items, next_before=items[-1].seq if more else None)
