"""The sessions pages: the list (live first), one session's cells with their rich outputs, actions.

    GET  /console/sessions                                  the list; /sessions/rows: its table
    GET  /console/sessions/{id}                             state, generation, cells in order
    GET  /console/sessions/{id}/cells                       the cells alone (refreshed while live)
    GET  /console/sessions/{id}/cells/{n}/outputs/{k}.png   a figure (k: an index, or "result")
    GET  /console/sessions/{id}/cells/{n}/outputs/{k}.html  a table or other HTML, sandboxed
    POST /console/sessions/{id}/interrupt|restart|close     (forms, CSRF)
    POST /console/sessions/{id}/pause|resume                a checkpoint, as the API's

A cell's code (highlighted, as a run's) and outputs come from the session
registry, which keeps each cell's result and code: PNG figures as images,
HTML (a DataFrame) in a sandboxed frame, anything else as its ``text/plain``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from ai_data_agent.errors import NotFound
from ai_data_agent.service.console import frames
from ai_data_agent.service.console.backend import Backend, Cell
from ai_data_agent.service.console.pages import Page
from ai_data_agent.service.console.web import (
    Viewer,
    checked_form,
    console_of,
    current_viewer,
    render,
)
from ai_data_agent.session_models import (
    LIVE_SESSION_STATUSES,
    CellResult,
    DisplayOutput,
    SessionInfo,
    SessionStatus,
)
from ai_data_agent.tenant_models import Principal

__all__ = ["PAGE", "router"]

PAGE = Page("sessions", "Sessions")
router = APIRouter()
ViewerDep = Annotated[Viewer, Depends(current_viewer)]
Action = Literal["interrupt", "restart", "pause", "resume", "close"]


async def _session(backend: Backend, viewer: Viewer, session_id: str) -> SessionInfo:
    info = await backend.session(viewer.principal, session_id)
    if info is None:
        raise NotFound(f"no session with id {session_id[:64]!r}")
    return info


def _outputs(cell: CellResult) -> list[tuple[str, DisplayOutput]]:
    """A cell's displays in order, then the value of its last expression, each with its key."""
    shown = [(str(index), output) for index, output in enumerate(cell.outputs)]
    return shown + ([("result", cell.result)] if cell.result is not None else [])


async def _list(
    request: Request,
    viewer: ViewerDep,
    tenant: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, object]:
    """The sessions the viewer sees (an admin's narrowed to ``tenant`` when given)."""
    sessions = await console_of(request).backend.sessions(viewer.principal, tenant or None)
    live = sum(1 for s in sessions if s.status in LIVE_SESSION_STATUSES)
    return {
        "sessions": sessions,
        "live_count": live,
        "paused_count": sum(1 for s in sessions if s.status is SessionStatus.PAUSED),
        "live": LIVE_SESSION_STATUSES,
        "tenant": tenant or "",
    }


Listing = Annotated[dict[str, object], Depends(_list)]


@router.get("/sessions")
async def sessions_page(request: Request, viewer: ViewerDep, listing: Listing) -> Response:
    return render(request, "sessions.html", listing, viewer=viewer)


@router.get("/sessions/rows")
async def sessions_rows(request: Request, viewer: ViewerDep, listing: Listing) -> Response:
    return render(request, "_sessions_table.html", listing, viewer=viewer)


def _shown(cell: Cell, code: str | None) -> dict[str, object]:
    """A cell for the template: its number, code, result (None while it runs), outputs."""
    if isinstance(cell, CellResult):
        shown = {"count": cell.execution_count, "result": cell, "outputs": _outputs(cell)}
        return {**shown, "code": code}
    return {"count": cell.count, "result": None, "outputs": [], "code": code}


async def _cells_context(request: Request, viewer: Viewer, session_id: str) -> dict[str, object]:
    backend = console_of(request).backend
    info = await _session(backend, viewer, session_id)
    cells = await backend.cells(viewer.principal, info)
    return {
        "info": info,
        "cells": [_shown(cell, code) for cell, code in cells],
        "live": info.status in LIVE_SESSION_STATUSES,
        "paused": info.status is SessionStatus.PAUSED,
    }


@router.get("/sessions/{session_id}")
async def session_page(request: Request, session_id: str, viewer: ViewerDep) -> Response:
    context = await _cells_context(request, viewer, session_id)
    return render(request, "session.html", context, viewer=viewer)


@router.get("/sessions/{session_id}/cells")
async def session_cells(request: Request, session_id: str, viewer: ViewerDep) -> Response:
    context = await _cells_context(request, viewer, session_id)
    return render(request, "_session_cells.html", context, viewer=viewer)


async def _output(
    request: Request, viewer: Viewer, session_id: str, count: int, key: str
) -> DisplayOutput:
    cell = await console_of(request).backend.cell(viewer.principal, session_id, count)
    found = dict(_outputs(cell)) if isinstance(cell, CellResult) else {}
    if key not in found:
        raise NotFound(f"session {session_id[:64]!r} has no output {key[:20]!r} in cell {count}")
    return found[key]


@router.get("/sessions/{session_id}/cells/{count}/outputs/{key}.png")
async def output_png(
    request: Request, session_id: str, count: int, key: str, viewer: ViewerDep
) -> Response:
    data = (await _output(request, viewer, session_id, count, key)).data.get("image/png")
    try:
        png = base64.b64decode(data, validate=True) if isinstance(data, str) else None
    except (binascii.Error, ValueError):
        png = None
    if png is None:
        raise NotFound(f"output {key[:20]!r} of cell {count} has no PNG image")
    return frames.image(png, "image/png", f"cell-{count}-{key}.png")


@router.get("/sessions/{session_id}/cells/{count}/outputs/{key}.html")
async def output_html(
    request: Request, session_id: str, count: int, key: str, viewer: ViewerDep
) -> Response:
    html = (await _output(request, viewer, session_id, count, key)).data.get("text/html")
    if not isinstance(html, str):
        raise NotFound(f"output {key[:20]!r} of cell {count} has no HTML")
    return frames.html_frame(html)


@router.post("/sessions/{session_id}/{action}")
async def session_action(
    request: Request, session_id: str, action: Action, viewer: ViewerDep
) -> Response:
    await checked_form(request)
    backend = console_of(request).backend
    await _session(backend, viewer, session_id)
    calls: dict[Action, Callable[[Principal, str], Awaitable[object]]] = {
        "interrupt": backend.interrupt,
        "restart": backend.restart,
        "pause": backend.pause,
        "resume": backend.resume,
        "close": backend.close,
    }
    await calls[action](viewer.principal, session_id)
    base = request.scope.get("root_path", "")
    return RedirectResponse(f"{base}/sessions/{session_id}", status_code=303)
