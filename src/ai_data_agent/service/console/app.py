"""The console as an ASGI app of its own, mounted by the daemon's app at ``/console``.

    app.mount(PATH, console_app(node))      # service/app.py, unless console_enabled is off

Its own app keeps its answers (HTML pages, their headers, their errors) apart
from the JSON API's and out of its OpenAPI document. Pages are listed once, in
`SECTIONS` (the navigation's order); docs/console.md says how to add one.
"""

from __future__ import annotations

import urllib.parse
from typing import cast

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException

from ai_data_agent.errors import AiDataAgentError, Unauthorized
from ai_data_agent.service.console import (
    audit,
    datasets,
    health,
    login,
    runs,
    sessions,
    tenants,
)
from ai_data_agent.service.console.backend import Backend, NodeProtocol
from ai_data_agent.service.console.cookies import Visit
from ai_data_agent.service.console.pages import Page
from ai_data_agent.service.console.web import REVOKED, Console, VisitMiddleware, render

__all__ = ["PATH", "SECTIONS", "console_app"]

PATH = "/console"
SECTIONS: tuple[tuple[Page, APIRouter], ...] = (
    (runs.PAGE, runs.router),
    (sessions.PAGE, sessions.router),
    (datasets.PAGE, datasets.router),
    (tenants.PAGE, tenants.router),
    (audit.PAGE, audit.router),
    (health.PAGE, health.router),
)
FETCH_HEADER = "x-console-fetch"  # console.js's requests: a 401, not a redirect


def console_app(node: NodeProtocol) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.console = Console(Backend(node), pages=tuple(page for page, _ in SECTIONS))
    app.add_middleware(VisitMiddleware)
    app.add_exception_handler(Unauthorized, _login_required)
    app.add_exception_handler(AiDataAgentError, _known_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.include_router(login.router)
    for _, router in SECTIONS:
        app.include_router(router)
    app.mount("/static", StaticFiles(packages=[("ai_data_agent.service.console", "static")]))
    app.add_api_route("/", _home, methods=["GET"])
    return app


async def _home(request: Request) -> Response:
    return RedirectResponse(f"{request.scope.get('root_path', '')}/runs", status_code=303)


def _error_page(request: Request, status: int, message: str) -> Response:
    if request.headers.get(FETCH_HEADER):
        return Response(message, status_code=status, media_type="text/plain; charset=utf-8")
    return render(request, "error.html", {"status": status, "message": message}, status=status)


async def _login_required(request: Request, exc: Exception) -> Response:
    """A script's request gets 401 (the script reloads its page); a page or a form goes
    to the login, the visit of a token no longer accepted signed out on the way."""
    error = cast(Unauthorized, exc)
    if request.headers.get(FETCH_HEADER):
        return Response(str(error), status_code=401, media_type="text/plain; charset=utf-8")
    base = request.scope.get("root_path", "")
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    query = {"next": back if request.method == "GET" else f"{base}/runs"}
    if error.code == REVOKED:
        query["why"] = "revoked"
        request.state.visit = Visit.fresh()
    return RedirectResponse(f"{base}/login?{urllib.parse.urlencode(query)}", status_code=303)


async def _known_error(request: Request, exc: Exception) -> Response:
    error = cast(AiDataAgentError, exc)
    if error.http_status is None:
        logger.opt(exception=error).error("console {} failed: {}", request.url.path, error)
        return _error_page(request, 500, "internal error; see the daemon's log")
    return _error_page(request, error.http_status, str(error))


async def _invalid(request: Request, exc: Exception) -> Response:
    return _error_page(request, 400, "the address has a value the console does not understand")


async def _http_error(request: Request, exc: Exception) -> Response:
    error = cast(StarletteHTTPException, exc)
    message = "no such page" if error.status_code == 404 else str(error.detail)
    return _error_page(request, error.status_code, message)
