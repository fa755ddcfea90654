"""What every console request goes through: its visit, its viewer, the guard of its form, its headers.

    console = Console(Backend(node))              # app.state.console of the console's app
    app.add_middleware(VisitMiddleware)           # the cookie in, security headers out
    viewer: Viewer = Depends(current_viewer)      # who asks (or a redirect to the login)
    form = await checked_form(request)            # a POST: same origin and its CSRF token

Pages are answered with ``Content-Security-Policy: default-src 'none'`` plus
what the console's own files need (no inline script or style), ``no-store``,
and framing refused; answers that set their own policy (user HTML, downloads)
keep it. The visit cookie is written here and nowhere else: a route changes
``request.state.visit`` (login, logout, a token no longer accepted) and the
answer carries the new cookie.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ai_data_agent.errors import Forbidden, Unauthorized
from ai_data_agent.service.console.backend import Backend
from ai_data_agent.service.console.cookies import COOKIE, MAX_AGE_S, Signer, Visit, load_key
from ai_data_agent.service.console.identity import Identity, Principal
from ai_data_agent.service.console.pages import Page
from ai_data_agent.service.console.templating import Templates

__all__ = [
    "PAGE_CSP",
    "REVOKED",
    "Console",
    "Viewer",
    "VisitMiddleware",
    "checked_form",
    "console_of",
    "current_viewer",
    "render",
    "visit_of",
]

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "cache-control": "no-store",
}


REVOKED = "token_revoked"  # the code of an `Unauthorized` for a visit whose token went


@dataclass
class Keyed:
    signer: Signer
    identity: Identity


@dataclass
class Console:
    """The console's parts, shared by its routes (``app.state.console``)."""

    backend: Backend
    pages: tuple[Page, ...] = ()
    templates: Templates = field(default_factory=Templates)
    _keyed: Keyed | None = None
    _lock: anyio.Lock = field(default_factory=anyio.Lock)

    async def keyed(self) -> Keyed:
        """The signer and identity, once the key is loaded (made, the first time)."""
        async with self._lock:
            if self._keyed is None:
                key = await anyio.to_thread.run_sync(load_key, self.backend.settings)
                self._keyed = Keyed(Signer(key), Identity(self.backend))
            return self._keyed


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


@dataclass(frozen=True)
class Viewer:
    """Who is looking, and the CSRF token their forms carry."""

    principal: Principal
    csrf: str
    auth_open: bool


class VisitMiddleware:
    """ASGI: the visit from the cookie in (``scope["state"]["visit"]``), headers and cookie out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        console: Console = scope["app"].state.console
        signer = (await console.keyed()).signer
        incoming = signer.load(Request(scope).cookies.get(COOKIE))
        state = scope.setdefault("state", {})
        state["visit"] = incoming or Visit.fresh()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if "content-security-policy" not in headers:
                    headers["content-security-policy"] = PAGE_CSP
                    headers["x-frame-options"] = "DENY"
                if state["visit"] != incoming:
                    headers.append("set-cookie", _cookie(scope, signer.dump(state["visit"])))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _cookie(scope: Scope, value: str) -> str:
    path = scope.get("root_path") or "/"
    secure = "; Secure" if scope.get("scheme") == "https" else ""
    return f"{COOKIE}={value}; Path={path}; Max-Age={MAX_AGE_S}; HttpOnly; SameSite=Strict{secure}"


def visit_of(request: Request) -> Visit:
    visit: Visit = request.state.visit
    return visit


async def current_viewer(request: Request) -> Viewer:
    """The logged-in viewer (a dependency of every page but the login).

    Raises:
        Unauthorized: not logged in, or (code REVOKED) the token is no longer accepted.
        NotReady: the token file cannot be read.
    """
    keyed = await console_of(request).keyed()
    credential = visit_of(request).credential
    if credential is None and not keyed.identity.open:
        raise Unauthorized("sign in with a token")
    principal = await anyio.to_thread.run_sync(keyed.identity.resolve, credential or "")
    if principal is None:
        raise Unauthorized("the token is no longer accepted", code=REVOKED)
    request.state.principal = principal  # who the audit entry of a form names
    return Viewer(principal, keyed.signer.csrf(visit_of(request)), keyed.identity.open)


async def current_admin(request: Request) -> Viewer:
    """The logged-in viewer of an admin's page.

    Raises:
        Forbidden: the viewer's tenant is no admin.
        Unauthorized, NotReady: as `current_viewer`.
    """
    viewer = await current_viewer(request)
    if not viewer.principal.is_admin:
        raise Forbidden("this page is for admins")
    return viewer


def same_origin(request: Request) -> bool:
    """The request comes from a page of this server (``Origin``, else ``Referer``)."""
    own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
    origin = request.headers.get("origin")
    if origin is not None:
        return origin.lower() == own
    referer = (request.headers.get("referer") or "").lower()
    return referer == own or referer.startswith(own + "/")


async def checked_form(request: Request) -> FormData:
    """A state-changing request's form, once its origin and CSRF token are checked.

    A refusal is the framework's `HTTPException`, not an error of the package's tree:
    it is a page for a browser, never an answer of the API that a client raises again.

    Raises:
        HTTPException: 403, another origin, or no or a wrong CSRF token.
    """
    if not same_origin(request):
        raise HTTPException(403, "refused: the request did not come from this console's own pages")
    form = await request.form()
    token = form.get("csrf")
    signer = (await console_of(request).keyed()).signer
    if not isinstance(token, str) or not signer.csrf_ok(visit_of(request), token):
        raise HTTPException(
            403, "refused: the form's CSRF token is missing or stale; reload the page"
        )
    return form


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    viewer: Viewer | None = None,
    status: int = 200,
) -> HTMLResponse:
    """A page (or a fragment, for names starting with ``_``) for ``viewer``."""
    console = console_of(request)
    base = request.scope.get("root_path", "")
    pages = [p for p in console.pages if viewer is not None and p.visible_to(viewer.principal)]
    values = {"base": base, "viewer": viewer, "nav": pages, "request_path": request.url.path}
    return HTMLResponse(console.templates.render(name, {**values, **context}), status_code=status)
