"""The tenants page (admins): each tenant's role, quotas and what it uses now; its tokens.

    GET  /console/tenants                         tenants, then tokens (never a secret)
    POST /console/tenants/tokens                  tenant, name, expires_h -> the secret, once
    POST /console/tenants/tokens/{name}/revoke    refused from the token's next request on

A new token's secret is shown on the answer to its form only (no redirect, so
it is in no URL or history entry; every console page is ``no-store``). Tenants
are added, changed and removed with the command line or ``/v1/tenants``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from ai_data_agent.errors import RequestRejected
from ai_data_agent.service.console.pages import Page
from ai_data_agent.service.console.web import (
    Viewer,
    checked_form,
    console_of,
    current_admin,
    render,
)
from ai_data_agent.tenant_models import NewToken, TokenCreate

__all__ = ["PAGE", "router"]

PAGE = Page("tenants", "Tenants", admin_only=True)
MAX_EXPIRES_H = 24 * 3650

router = APIRouter()
AdminDep = Annotated[Viewer, Depends(current_admin)]


async def _page(request: Request, viewer: Viewer, made: NewToken | None = None) -> Response:
    backend = console_of(request).backend
    context = {"usage": await backend.tenants(), "tokens": await backend.tokens(), "made": made}
    return render(request, "tenants.html", context, viewer=viewer, status=201 if made else 200)


@router.get("/tenants")
async def tenants_page(request: Request, viewer: AdminDep) -> Response:
    return await _page(request, viewer)


def _token_create(form: Mapping[str, object]) -> TokenCreate:
    """The form as the API's model.

    Raises:
        RequestRejected: a field is missing or wrong, named.
    """
    hours = form.get("expires_h") or None
    try:
        expires = None if hours is None else float(str(hours)) * 3600
    except ValueError:
        raise RequestRejected("expires_h", "must be a number of hours") from None
    if expires is not None and not 0 < expires <= MAX_EXPIRES_H * 3600:
        raise RequestRejected("expires_h", f"must be above 0 and at most {MAX_EXPIRES_H}")
    try:
        return TokenCreate(
            tenant=str(form.get("tenant", "")), name=str(form.get("name", "")), expires_in_s=expires
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(part) for part in problem["loc"]) or "form"
        raise RequestRejected(field, problem["msg"]) from None


@router.post("/tenants/tokens")
async def console_new_token(request: Request, viewer: AdminDep) -> Response:
    form = dict(await checked_form(request))
    request.state.audit_object = str(form.get("name", ""))  # named even when refused
    create = _token_create(form)
    made = await console_of(request).backend.new_token(create)
    return await _page(request, viewer, made)


@router.post("/tenants/tokens/{name}/revoke")
async def console_revoke_token(request: Request, name: str, viewer: AdminDep) -> Response:
    await checked_form(request)
    await console_of(request).backend.revoke(name)
    base = request.scope.get("root_path", "")
    return RedirectResponse(f"{base}/tenants", status_code=303)
