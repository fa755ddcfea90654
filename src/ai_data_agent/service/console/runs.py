"""The runs pages: the list (filters, pages, live), one run (code, output live, artifacts), cancel.

    GET  /console/runs?status=failed&since=24h&page=2     the list; /runs/rows: its table alone
    GET  /console/runs/{id}                               one run
    GET  /console/runs/{id}/events                        its live output (SSE, while it runs)
    POST /console/runs/{id}/cancel                        cancel (form, CSRF)
    GET  /console/runs/{id}/artifacts/{path}              download
    GET  /console/runs/{id}/preview/{path}                an image inline, or HTML sandboxed

The list reads one page of records through the store's indexed query
(newest first; ``since`` on ``created_at``), never the whole table.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from ai_data_agent.api_models import ACTIVE_RUN_STATUSES, ActiveStatus
from ai_data_agent.errors import NotFound, RequestRejected, Unauthorized
from ai_data_agent.models import RunStatus
from ai_data_agent.service.console import frames
from ai_data_agent.service.console.backend import RunEvents, sse_line
from ai_data_agent.service.console.pages import SINCE, Page, since_cutoff
from ai_data_agent.service.console.web import (
    Viewer,
    checked_form,
    console_of,
    current_viewer,
    render,
)

__all__ = ["PAGE", "router"]

PAGE = Page("runs", "Runs")
PAGE_SIZE = 50
STATUSES = [s.value for s in ActiveStatus] + [s.value for s in RunStatus]
RECHECK_S = 2.0  # how often a live stream checks that its viewer may still look

router = APIRouter()
ViewerDep = Annotated[Viewer, Depends(current_viewer)]


def _filters(status: str | None, since: str | None) -> tuple[str | None, float | None]:
    status, since = status or None, since or None
    if status is not None and status not in STATUSES:
        raise RequestRejected("status", f"must be one of {', '.join(STATUSES)}")
    return status, since_cutoff(since)


async def _table(
    request: Request,
    viewer: ViewerDep,
    status: str | None = None,
    since: str | None = None,
    tenant: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> dict[str, object]:
    """One page of the list, as the query asks (a dependency of the page and its rows);
    ``tenant`` narrows an admin's list (an agent's is always its own)."""
    wanted, after = _filters(status, since)
    records, total = await console_of(request).backend.runs(
        viewer.principal,
        status=wanted,
        tenant=tenant or None,
        since=after,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    return {
        "tenant": tenant or "",
        "records": records,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "status": status or "",
        "since": since or "",
        "statuses": STATUSES,
        "since_choices": list(SINCE),
        "active": ACTIVE_RUN_STATUSES,
    }


Table = Annotated[dict[str, object], Depends(_table)]


@router.get("/runs")
async def runs_page(request: Request, viewer: ViewerDep, table: Table) -> Response:
    return render(request, "runs.html", table, viewer=viewer)


@router.get("/runs/rows")
async def runs_rows(request: Request, viewer: ViewerDep, table: Table) -> Response:
    return render(request, "_runs_table.html", table, viewer=viewer)


@router.get("/runs/{run_id}")
async def run_page(request: Request, run_id: str, viewer: ViewerDep) -> Response:
    record = await console_of(request).backend.run(viewer.principal, run_id)
    return render(
        request,
        "run.html",
        {
            "record": record,
            "active": record.status in ACTIVE_RUN_STATUSES,
            "images": frames.INLINE_IMAGES,
        },
        viewer=viewer,
    )


async def _follow(request: Request, events: RunEvents | None) -> AsyncIterator[str]:
    """The run's events; ``end`` when there are no more, ``logout`` when the viewer may no
    longer look (checked every RECHECK_S while the run is quiet)."""
    if events is None:
        yield sse_line("end", "{}")
        return
    stream = events.follow().__aiter__()
    pending: asyncio.Future[tuple[str, str]] | None = None
    try:
        while True:
            pending = pending or asyncio.ensure_future(stream.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=RECHECK_S)
            if not done:
                try:
                    await current_viewer(request)
                except Unauthorized:
                    yield sse_line("logout", "{}")
                    return
                continue
            try:
                name, data = pending.result()
            except StopAsyncIteration:
                yield sse_line("end", "{}")
                return
            pending = None
            yield sse_line(name, data)
    finally:
        if pending is not None:
            pending.cancel()


@router.get("/runs/{run_id}/events")
async def run_events(request: Request, run_id: str, viewer: ViewerDep) -> StreamingResponse:
    backend = console_of(request).backend
    events = await backend.run_events(viewer.principal, run_id)
    return StreamingResponse(
        _follow(request, events),
        media_type="text/event-stream",
        headers={"X-Accel-Buffering": "no"},
    )


@router.post("/runs/{run_id}/cancel")
async def cancel_run(request: Request, run_id: str, viewer: ViewerDep) -> Response:
    await checked_form(request)
    backend = console_of(request).backend
    await backend.run(viewer.principal, run_id)  # a 404 for a run it does not see
    await backend.cancel(viewer.principal, run_id)
    base = request.scope.get("root_path", "")
    return RedirectResponse(f"{base}/runs/{run_id}", status_code=303)


@router.get("/runs/{run_id}/artifacts/{path:path}")
async def artifact(request: Request, run_id: str, path: str, viewer: ViewerDep) -> Response:
    return frames.download(
        *await console_of(request).backend.artifact(viewer.principal, run_id, path)
    )


@router.get("/runs/{run_id}/preview/{path:path}")
async def preview(request: Request, run_id: str, path: str, viewer: ViewerDep) -> Response:
    artifact, body = await console_of(request).backend.artifact(viewer.principal, run_id, path)
    if artifact.media_type not in frames.INLINE_IMAGES and artifact.media_type != "text/html":
        raise NotFound(f"artifact {path[:200]!r} ({artifact.media_type}) has no preview")
    data = await anyio.to_thread.run_sync(frames.read_preview, body)
    if data is None:
        raise NotFound(f"artifact {path[:200]!r} is too large to preview; download it")
    if artifact.media_type == "text/html":
        return frames.html_frame(data.decode("utf-8", errors="replace"))
    return frames.image(data, artifact.media_type, artifact.path)
