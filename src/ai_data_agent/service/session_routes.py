"""The sessions API: a kernel per session, cells one at a time, files in and out.

    POST   /v1/sessions                          SessionRequest -> 201 SessionInfo
    GET    /v1/sessions                          SessionPage, live first (?tenant=)
    GET    /v1/sessions/{id}                     SessionInfo
    DELETE /v1/sessions/{id}                     close; SessionInfo
    POST   /v1/sessions/{id}/cells               CellRequest -> 200 CellResult | 202 CellAccepted
    GET    /v1/sessions/{id}/cells/{n}           CellResult (200) or CellAccepted (202, running)
    GET    /v1/sessions/{id}/cells/{n}/events    status, stdout, stderr, display, result (SSE)
    POST   /v1/sessions/{id}/interrupt           {"interrupted": bool}
    POST   /v1/sessions/{id}/restart             SessionInfo (a new generation)
    POST   /v1/sessions/{id}/packages            PackagesRequest -> PackagesResult
    GET    /v1/sessions/{id}/files               [SessionFile]
    PUT    /v1/sessions/{id}/files/{path}        the raw bytes -> 201 SessionFile
    GET    /v1/sessions/{id}/files/{path}        the bytes

Same auth, ownership (another tenant's session is 404) and error shape as runs; ``409 session_busy`` for a call while
another runs (nothing is queued), ``410 session_gone`` once the session
ended, ``429 session_limit`` when no session fits, ``422 install_failed``
when requirements do not install, ``400`` for a file path that is not a normal
relative path (taken as it is, never rewritten).
"""

from __future__ import annotations

import json
import mimetypes
import urllib.parse
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Annotated

from anyio.to_thread import run_sync
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from ai_data_agent.errors import RequestRejected
from ai_data_agent.paths import check_relative_path
from ai_data_agent.service.datasets.routes import pin_session
from ai_data_agent.service.deps import PrincipalDep, node_of, note_object
from ai_data_agent.service.events import sse_line
from ai_data_agent.service.handles import CellHandle, wait_done
from ai_data_agent.service.ownership import TenantSessions
from ai_data_agent.session_models import (
    CellAccepted,
    CellRequest,
    CellResult,
    Interrupted,
    PackagesRequest,
    PackagesResult,
    SessionFile,
    SessionInfo,
    SessionPage,
    SessionRequest,
)

__all__ = ["router"]


def _manager(request: Request) -> TenantSessions:
    node = node_of(request)
    return TenantSessions(node.sessions, node.tenants, node.cpu)


Manager = Annotated[TenantSessions, Depends(_manager)]
router = APIRouter(prefix="/sessions", tags=["sessions"])


def _file_path(path: str) -> str:
    """A file's path from the URL, taken as it is (the rule of `check_relative_path`).

    Raises:
        RequestRejected: not a safe, normal relative path (``a//b``, ``a/./b``, ``a/``, ...).
    """
    try:
        return check_relative_path(path)
    except ValueError as exc:
        raise RequestRejected("path", str(exc)) from exc


@router.post("", status_code=201, summary="Start a session (a kernel in a fresh sandbox)")
async def create_session(
    body: SessionRequest, request: Request, manager: Manager, principal: PrincipalDep
) -> SessionInfo:
    """Its ``datasets`` (the tenant's) are pinned to the versions they name now, and
    mounted read-only."""
    body = await run_sync(pin_session, node_of(request), principal.tenant, body)
    info = await run_sync(manager.create, principal, body)
    note_object(request, info.id)
    return info


@router.get("", summary="Sessions, live first")
async def list_sessions(
    manager: Manager,
    principal: PrincipalDep,
    tenant: Annotated[
        str | None, Query(description="An admin: only this tenant's (an agent sees its own).")
    ] = None,
) -> SessionPage:
    return SessionPage(items=await run_sync(manager.sessions, principal, tenant))


@router.get("/{session_id}", summary="A session")
async def get_session(session_id: str, manager: Manager, principal: PrincipalDep) -> SessionInfo:
    return await run_sync(manager.get, principal, session_id)


@router.delete("/{session_id}", summary="Close a session; its container is removed")
async def close_session(session_id: str, manager: Manager, principal: PrincipalDep) -> SessionInfo:
    return await run_sync(manager.close, principal, session_id)


def _accepted(handle: CellHandle) -> JSONResponse:
    body = CellAccepted(session_id=handle.session_id, execution_count=handle.count)
    location = f"/v1/sessions/{handle.session_id}/cells/{handle.count}"
    return JSONResponse(body.model_dump(), status_code=202, headers={"Location": location})


def _finished(handle: CellHandle) -> JSONResponse:
    if handle.error is not None:
        raise handle.error
    assert handle.result is not None
    return JSONResponse(handle.result.model_dump(mode="json"))


@router.post(
    "/{session_id}/cells",
    response_model=CellResult,
    responses={202: {"model": CellAccepted, "description": "running; poll the `Location`"}},
    summary="Run a cell",
)
async def run_cell(
    session_id: str, body: CellRequest, manager: Manager, principal: PrincipalDep
) -> Response:
    """With ``wait`` (the default) answer 200 with the `CellResult` when the cell ends;
    otherwise 202 at once."""
    handle = await run_sync(manager.submit_cell, principal, session_id, body)
    if not body.wait:
        return _accepted(handle)
    await wait_done(handle)
    return _finished(handle)


@router.get(
    "/{session_id}/cells/{count}",
    response_model=CellResult,
    responses={202: {"model": CellAccepted, "description": "still running"}},
    summary="A cell's result",
)
async def get_cell(
    session_id: str, count: int, manager: Manager, principal: PrincipalDep
) -> Response:
    found = await run_sync(manager.cell, principal, session_id, count)
    if isinstance(found, CellHandle):
        return _accepted(found)
    return JSONResponse(found.model_dump(mode="json"))


@router.get(
    "/{session_id}/cells/{count}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
    summary="A cell's live output as Server-Sent Events",
)
async def cell_events(
    session_id: str, count: int, manager: Manager, principal: PrincipalDep
) -> StreamingResponse:
    """``status``, ``stdout``/``stderr`` chunks, ``display`` (a MIME bundle) as they happen,
    and last ``result`` (the `CellResult`) or ``error``. Late clients get the backlog first;
    for a finished cell, its stored output and result."""
    found = await run_sync(manager.cell, principal, session_id, count)

    async def stream() -> AsyncIterator[str]:
        if isinstance(found, CellHandle):
            async for name, data in found.events.follow():
                yield sse_line(name, data)
            return
        yield sse_line("status", json.dumps({"status": found.status.value}))
        for name, text in (("stdout", found.stdout), ("stderr", found.stderr)):
            if text:
                yield sse_line(name, json.dumps({"data": text}))
        for output in found.outputs:
            yield sse_line("display", output.model_dump_json())
        yield sse_line("result", found.model_dump_json())

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/{session_id}/interrupt", summary="Interrupt the running cell")
async def interrupt_session(
    session_id: str, manager: Manager, principal: PrincipalDep
) -> Interrupted:
    return Interrupted(interrupted=await run_sync(manager.interrupt, principal, session_id))


@router.post("/{session_id}/restart", summary="A fresh kernel: variables lost, files kept")
async def restart_session(
    session_id: str, manager: Manager, principal: PrincipalDep
) -> SessionInfo:
    return await run_sync(manager.restart, principal, session_id)


@router.post("/{session_id}/packages", summary="Add requirements to the session")
async def add_packages(
    session_id: str, body: PackagesRequest, manager: Manager, principal: PrincipalDep
) -> PackagesResult:
    """The union of the session's requirements and these installs through the environment
    cache (never in the session's container, which has no network) and goes on the kernel's
    path; ``restart_required`` says when an imported distribution changed version."""
    return await run_sync(manager.install, principal, session_id, list(body.requirements))


@router.get("/{session_id}/files", summary="Files under the session's working directory")
async def list_session_files(
    session_id: str, manager: Manager, principal: PrincipalDep
) -> list[SessionFile]:
    return await run_sync(manager.files, principal, session_id)


@router.put(
    "/{session_id}/files/{path:path}",
    status_code=201,
    summary="Upload a file (the request body is its bytes)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def put_session_file(
    session_id: str, path: str, request: Request, manager: Manager, principal: PrincipalDep
) -> SessionFile:
    path = _file_path(path)
    await run_sync(manager.get, principal, session_id)  # a 404 before the body is read
    data = await request.body()
    stored = await run_sync(manager.upload, principal, session_id, path, data)
    return SessionFile(path=stored, size=len(data), modified_at=datetime.now(UTC))


@router.get(
    "/{session_id}/files/{path:path}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
    summary="Download a file",
)
async def get_session_file(
    session_id: str, path: str, manager: Manager, principal: PrincipalDep
) -> Response:
    path = _file_path(path)
    data = await run_sync(manager.download, principal, session_id, path)
    media_type = mimetypes.guess_type(path, strict=False)[0] or "application/octet-stream"
    name = urllib.parse.quote(PurePosixPath(path).name, safe="")
    headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{name}"}
    return Response(data, media_type=media_type, headers=headers)
