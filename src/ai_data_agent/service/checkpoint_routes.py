"""The checkpoints API: a session's state kept past its container, and sessions started from it.

    POST /v1/sessions/{id}/checkpoint      201 CheckpointInfo (what was kept, what was lost)
    GET  /v1/sessions/{id}/checkpoints     CheckpointPage, newest first
    POST /v1/sessions/{id}/pause           SessionInfo (``paused``: the container is gone)
    POST /v1/sessions/{id}/resume          RestoreReport (``state: restored``, names back, lost)
    POST /v1/sessions/{id}/fork            ForkRequest -> 201 SessionInfo (a new session)

Any other call on a paused session resumes it first (see `session_routes`).
Same auth, ownership and errors as the sessions API (a fork is the caller's
tenant's); ``422 checkpoint_failed`` when the
serialiser fails or runs out of time (the session is unharmed) or a resume
refuses a checkpoint that is not as the daemon signed it, ``413`` over the
checkpoint cap, ``404`` for another tenant's session or checkpoint.
"""

from __future__ import annotations

from typing import Annotated

from anyio.to_thread import run_sync
from fastapi import APIRouter, Body, Depends, Request

from ai_data_agent.checkpoint_models import (
    CheckpointInfo,
    CheckpointPage,
    ForkRequest,
    RestoreReport,
)
from ai_data_agent.service.deps import PrincipalDep, node_of, note_object
from ai_data_agent.service.ownership import TenantCheckpoints
from ai_data_agent.session_models import SessionInfo

__all__ = ["router"]


def _service(request: Request) -> TenantCheckpoints:
    node = node_of(request)
    return TenantCheckpoints(node.sessions, node.checkpoints)


Service = Annotated[TenantCheckpoints, Depends(_service)]
router = APIRouter(prefix="/sessions", tags=["checkpoints"])


@router.post("/{session_id}/checkpoint", status_code=201, summary="Checkpoint a session")
async def checkpoint_session(
    session_id: str, service: Service, principal: PrincipalDep
) -> CheckpointInfo:
    """The namespace, serialised inside the sandbox, and the working directory's files, kept
    in the daemon's storage; variables that cannot be kept are listed with the reason."""
    return await run_sync(service.checkpoint, principal, session_id)


@router.get("/{session_id}/checkpoints", summary="A session's checkpoints, newest first")
async def list_checkpoints(
    session_id: str, service: Service, principal: PrincipalDep
) -> CheckpointPage:
    items = await run_sync(service.checkpoints, principal, session_id)
    return CheckpointPage(items=items)


@router.post("/{session_id}/pause", summary="Checkpoint, then remove the container")
async def pause_session(session_id: str, service: Service, principal: PrincipalDep) -> SessionInfo:
    """The session is ``paused``: it holds no container, memory or CPU until resumed (by
    ``resume``, or by the next cell, file or package call)."""
    return await run_sync(service.pause, principal, session_id)


@router.post("/{session_id}/resume", summary="Resume a paused session")
async def resume_session(
    session_id: str, service: Service, principal: PrincipalDep
) -> RestoreReport:
    """A fresh container, its files and namespace restored: which variables came back and
    which did not. A live session answers ``state: preserved``."""
    return await run_sync(service.resume, principal, session_id)


@router.post("/{session_id}/fork", status_code=201, summary="A new session from a checkpoint")
async def fork_session(
    session_id: str,
    request: Request,
    service: Service,
    principal: PrincipalDep,
    body: Annotated[ForkRequest | None, Body()] = None,
) -> SessionInfo:
    """From the checkpoint named, else a fresh one of a live session, else the latest: the
    two sessions then go their own ways. The new session is the caller's tenant's."""
    forked = await run_sync(service.fork, principal, session_id, body or ForkRequest())
    note_object(request, forked.id)
    return forked
