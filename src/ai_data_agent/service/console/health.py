"""The health page: the readiness checks of ``/readyz``, the queue, and what ``/v1/info`` tells.

    GET /console/health          the page; /health/panel: its content alone (refreshed)

Engine, image and store (or, on a cluster's API node, the database and the
worker part's checks), prewarm progress; the cached environments, or a
cluster's workers with their load; queue depth, runs running and live sessions
as ``/metrics`` reports them; the warm pool and environment cache as
configured; the limits clients read from ``/v1/info``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ai_data_agent.service.console.pages import Page
from ai_data_agent.service.console.web import Viewer, console_of, current_admin, render

__all__ = ["PAGE", "router"]

PAGE = Page("health", "Health", admin_only=True)  # the node, not a tenant's things
router = APIRouter()
AdminDep = Annotated[Viewer, Depends(current_admin)]


async def _context(request: Request) -> dict[str, object]:
    backend = console_of(request).backend
    checks = await backend.checks()
    return {
        "checks": checks,
        "ready": all(check.ok for check in checks),
        "details": await backend.details(),
        "gauges": backend.gauges(),
        "in_flight": backend.in_flight(),
        "info": backend.info(),
        "settings": backend.settings,
    }


@router.get("/health")
async def health_page(request: Request, viewer: AdminDep) -> Response:
    return render(request, "health.html", await _context(request), viewer=viewer)


@router.get("/health/panel")
async def health_panel(request: Request, viewer: AdminDep) -> Response:
    return render(request, "_health_panel.html", await _context(request), viewer=viewer)
