"""Signing in and out with a bearer token.

    GET  /console/login?next=/console/runs     the form
    POST /console/login                        token, csrf -> 303 to ``next``, or the form again (401)
    POST /console/logout                       csrf -> 303 to the form

A token is accepted when the API accepts it (`identity`); the visit then holds
its credential and a new nonce (a new CSRF token). Authentication off: the
form says so and leads on. ``next`` must be a path of the console itself.
"""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ai_data_agent.service.console.cookies import Visit
from ai_data_agent.service.console.web import checked_form, console_of, render, visit_of

__all__ = ["router"]

router = APIRouter()
REASONS = {"revoked": "Your token is no longer accepted: you were signed out."}


def _next(request: Request, wanted: object) -> str:
    """Where to go after the login: ``wanted`` when it is a console path, else the runs."""
    base = request.scope.get("root_path", "")
    if isinstance(wanted, str) and wanted.startswith(base + "/") and "//" not in wanted:
        if "\\" not in wanted and not wanted.startswith(base + "/login"):
            return wanted
    return f"{base}/runs"


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    keyed = await console_of(request).keyed()
    if keyed.identity.open:
        return RedirectResponse(_next(request, next), status_code=303)
    context = {
        "csrf": keyed.signer.csrf(visit_of(request)),
        "next": _next(request, next),
        "error": REASONS.get(request.query_params.get("why", ""), ""),
    }
    return render(request, "login.html", context)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await checked_form(request)
    keyed = await console_of(request).keyed()
    token = form.get("token")
    found = (
        await anyio.to_thread.run_sync(keyed.identity.authenticate, token.strip())
        if isinstance(token, str) and token.strip()
        else None
    )
    if found is None:
        context = {
            "csrf": keyed.signer.csrf(visit_of(request)),
            "next": _next(request, form.get("next")),
            "error": "That token is not accepted.",
        }
        return render(request, "login.html", context, status=401)
    principal, credential = found
    request.state.principal = principal  # who the audit entry names
    request.state.visit = visit_of(request).logged_in(credential)
    return RedirectResponse(_next(request, form.get("next")), status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    await checked_form(request)
    request.state.visit = Visit.fresh()
    base = request.scope.get("root_path", "")
    return RedirectResponse(f"{base}/login", status_code=303)
