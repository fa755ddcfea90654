"""The HTTP API: FastAPI routes over the daemon's store and dispatcher.

    app = create_app(Settings())                 # a real Executor on the local engine
    app = create_app(settings, fake_executor)    # tests: anything shaped like Executor

Routes (``/v1`` and ``/metrics`` need ``Authorization: Bearer <token>`` when
tokens exist; docs/api.md has the details and examples)::

    GET    /v1/info          ServerInfo: version, limits, caps, features
    POST   /v1/runs          RunSubmission (JSON, or multipart with files)
                             -> 200 RunResult (wait) | 202 RunAccepted
    GET    /v1/runs/{id}     RunRecord
    GET    /v1/runs          RunPage, newest first (?status=&tenant=&since=&limit=&offset=)
    DELETE /v1/runs/{id}     cancel; RunRecord
    GET    /v1/runs/{id}/artifacts          the files it left under outputs/
    GET    /v1/runs/{id}/artifacts/{path}   one of them
    GET    /v1/runs/{id}/events             live status and output (Server-Sent Events)
    /v1/sessions...   sessions (`session_routes`)
    /v1/datasets...   datasets: upload, list, read, describe, delete (`datasets.routes`)
    /v1/tenants, /v1/tokens, /v1/audit      the admin's (`tenant_routes`)
    GET    /healthz          the process answers
    GET    /readyz           Docker, sandbox image and store usable, else 503
    GET    /metrics          Prometheus text
    *      /mcp              MCP over streamable HTTP (with the mcp extra; docs/mcp.md)
    GET    /console          the operator console (HTML; its own login; docs/console.md)
    *      /internal/blobs/{digest}   a cluster's API node: workers' blob transfers only
                             (`cluster.blob_routes`; the node secret, no bearer token)

Every ``/v1`` request resolves its `Principal` once (`deps.principal_of`): a
run or session belongs to the tenant whose token made it, and another
tenant's is 404 (`ownership`). Every ``/v1`` and ``/mcp`` request has its
audit entry committed before its answer starts (`audit_http`).
A submission is validated once (`submission`), its limits resolved once
(refusals answer 400/413 before anything is recorded), and a waiting POST is
answered with the result its run's handle carries: what the routes do with
runs is `runs`, shared with ``/mcp``. Errors are answered in one place
(`http_errors`). The event loop never blocks: store and Docker calls run in
worker threads, and a request that waits for its run awaits a future the
worker completes.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, cast

import anyio
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import AwareDatetime
from starlette.concurrency import iterate_in_threadpool

from ai_data_agent import __version__
from ai_data_agent.api_models import (
    ActiveStatus,
    ErrorBody,
    RunAccepted,
    RunPage,
    RunRecord,
    RunSubmission,
    ServerInfo,
)
from ai_data_agent.errors import NoWorker
from ai_data_agent.executor import Executor
from ai_data_agent.models import Artifact, RunResult, RunStatus
from ai_data_agent.service import runs
from ai_data_agent.service.audit_http import AuditMiddleware
from ai_data_agent.service.body_limit import BodyCaps, BodyLimitMiddleware
from ai_data_agent.service.checkpoint_routes import router as checkpoints_router
from ai_data_agent.service.daemon import Daemon
from ai_data_agent.service.datasets.routes import router as datasets_router
from ai_data_agent.service.deps import NodeDep, PrincipalDep, note_object, principal_of
from ai_data_agent.service.events import sse_line
from ai_data_agent.service.health import accepting, readiness
from ai_data_agent.service.http_errors import error_event, install_error_handlers
from ai_data_agent.service.info import server_info
from ai_data_agent.service.mcp import mcp_endpoint
from ai_data_agent.service.mcp.lazy import LazyEndpoint
from ai_data_agent.service.metrics import CONTENT_TYPE
from ai_data_agent.service.node import RunExecutor, ServiceNode
from ai_data_agent.service.openapi import ApiApp, install_docs
from ai_data_agent.service.session_routes import router as sessions_router
from ai_data_agent.service.submission import OPENAPI_REQUEST_BODY, read_submission
from ai_data_agent.service.tenant_routes import router as tenants_router
from ai_data_agent.settings import Settings

__all__ = ["create_app"]

TITLE = "ai-data-agent"
MAX_PAGE = 500

StatusFilter = ActiveStatus | RunStatus
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (401, "missing, wrong, revoked or expired bearer token (`unauthorized`)"),
        (404, "no such run, or another tenant's (`not_found`)"),
        (413, "request body too large (`payload_too_large`)"),
        (422, "invalid request (`invalid_request`)"),
        (503, "not ready or shutting down (`not_ready`)"),
    )
}
DaemonDep = NodeDep
v1 = APIRouter(prefix="/v1", dependencies=[Depends(principal_of)], responses=_ERRORS)
RUNS: list[str | Enum] = ["runs"]  # the OpenAPI tag of the run routes


@v1.get("/info", tags=["daemon"], summary="This daemon's version, limits, caps and features")
async def get_info(daemon: DaemonDep) -> ServerInfo:
    """What a request may ask for and what a run may return; clients read their
    limits here instead of assuming them."""
    return server_info(daemon.settings)


@v1.post(
    "/runs",
    tags=RUNS,
    response_model=RunResult,
    responses={
        202: {"model": RunAccepted, "description": "accepted; poll the `Location`"},
        400: {"model": ErrorBody, "description": "breaks a server limit (`invalid_request`)"},
        429: {"model": ErrorBody, "description": "queue full (`queue_full`); see `Retry-After`"},
    },
    openapi_extra={"requestBody": OPENAPI_REQUEST_BODY},
    summary="Run code in a fresh sandbox",
)
async def submit_run(
    request: Request,
    daemon: DaemonDep,
    principal: PrincipalDep,
    wait: Annotated[
        bool | None, Query(description="Overrides the body's `wait` when given.")
    ] = None,
) -> Response:
    """With ``wait`` (the default) answer 200 with the `RunResult` when the run ends;
    otherwise 202 with the run id and a ``Location`` to poll, at once."""
    submission = await read_submission(request, daemon.settings)
    handle = await runs.admit(daemon, principal, submission.to_request())  # 400/413: nothing
    note_object(request, handle.id)
    if not (submission.wait if wait is None else wait):
        accepted = RunAccepted(id=handle.id, status=ActiveStatus.QUEUED)
        return JSONResponse(
            accepted.model_dump(mode="json"),
            status_code=202,
            headers={"Location": f"/v1/runs/{handle.id}"},
        )
    result = await runs.final_result(daemon, handle)
    return JSONResponse(result.model_dump(mode="json"))


@v1.get("/runs/{run_id}", tags=RUNS, summary="A run's record")
async def get_run(run_id: str, daemon: DaemonDep, principal: PrincipalDep) -> RunRecord:
    return await runs.record_or_404(daemon, principal, run_id)


@v1.get("/runs", tags=RUNS, summary="Runs, newest first")
async def list_runs(
    daemon: DaemonDep,
    principal: PrincipalDep,
    status: Annotated[StatusFilter | None, Query(description="Only runs in this status.")] = None,
    tenant: Annotated[
        str | None, Query(description="An admin: only this tenant's (an agent sees its own).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    since: Annotated[
        AwareDatetime | None,
        Query(
            description="Only runs created at or after this time (ISO 8601 with a zone, "
            "or unix seconds)."
        ),
    ] = None,
) -> RunPage:
    after = None if since is None else since.timestamp()
    items, total = await runs.page(
        daemon, principal, status=status, tenant=tenant, limit=limit, offset=offset, since=after
    )
    return RunPage(items=items, total=total, limit=limit, offset=offset)


@v1.get("/runs/{run_id}/artifacts", tags=RUNS, summary="The files a run left under outputs/")
async def list_artifacts(run_id: str, daemon: DaemonDep, principal: PrincipalDep) -> list[Artifact]:
    record = await runs.record_or_404(daemon, principal, run_id)
    return list(record.result.artifacts) if record.result is not None else []


@v1.get(
    "/runs/{run_id}/artifacts/{path:path}",
    tags=RUNS,
    summary="One artifact's bytes",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def get_artifact(
    run_id: str, path: str, daemon: DaemonDep, principal: PrincipalDep
) -> Response:
    """Only files the run's result lists are served, from the run's own storage."""
    artifact, body = await runs.listed_artifact(daemon, principal, run_id, path)
    name = PurePosixPath(path).name
    if isinstance(body, Path):
        return FileResponse(
            body,
            media_type=artifact.media_type,
            filename=name,
            content_disposition_type="attachment",
        )
    quoted = urllib.parse.quote(name, safe="")
    return StreamingResponse(
        iterate_in_threadpool(body),
        media_type=artifact.media_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quoted}",
            "Content-Length": str(artifact.size),
        },
    )


@v1.get(
    "/runs/{run_id}/events",
    tags=RUNS,
    summary="Live output and status as Server-Sent Events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def run_events(run_id: str, daemon: DaemonDep, principal: PrincipalDep) -> StreamingResponse:
    """``status`` events (queued, installing, running, collecting), ``stdout`` and
    ``stderr`` chunks as produced, and a final ``result`` with the `RunResult`. A
    client that connects late gets everything produced so far first; for a run
    that has ended, the stored output and result. A queued run that nothing can
    execute (a cluster without a live worker) ends the stream with an ``error``
    event: the error body an answer would carry (``no_worker``)."""
    handle, _ = await runs.events_of(daemon, principal, run_id)  # a 404 before the stream

    async def stream() -> AsyncIterator[str]:
        if handle is not None:
            try:
                async for name, data in runs.executed_events(daemon, handle):
                    yield sse_line(name, data)
            except NoWorker as exc:  # the run stays queued; the client raises it again
                yield sse_line("error", error_event(exc))
            return
        ended = await runs.record_or_404(daemon, principal, run_id)
        result = runs.stored_result(ended, run_id)
        yield sse_line("status", json.dumps({"status": str(ended.status)}))
        for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            if text:
                yield sse_line(name, json.dumps({"data": text}))
        yield sse_line("result", result.model_dump_json())

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@v1.delete("/runs/{run_id}", tags=RUNS, summary="Cancel a queued or running run")
async def cancel_run(run_id: str, daemon: DaemonDep, principal: PrincipalDep) -> RunRecord:
    """A queued run is cancelled without starting; a running one is killed and its
    container removed before the answer. A finished run is returned unchanged."""
    return await runs.cancel(daemon, principal, run_id)


v1.include_router(sessions_router)
v1.include_router(datasets_router)
v1.include_router(checkpoints_router)
v1.include_router(tenants_router)


async def healthz() -> dict[str, str]:
    """The process is alive and its event loop answers."""
    return {"status": "ok"}


async def readyz(request: Request, daemon: DaemonDep) -> dict[str, Any]:
    """Docker reachable, sandbox image present, store writable, taking runs; else 503.
    (An API node of a cluster checks its database, and Docker only if it also works.)"""
    return await readiness(daemon, request.app, *accepting(daemon))


async def metrics(daemon: DaemonDep) -> Response:
    """Prometheus text format."""
    return Response(daemon.metrics.render(), media_type=CONTENT_TYPE)


def _node(settings: Settings, executor: RunExecutor | None, with_worker: bool) -> ServiceNode:
    """One node with SQLite, or a cluster's API node when ``database_url`` is set."""
    if settings.clustered:
        from ai_data_agent.service.cluster.api import ClusterNode

        return ClusterNode(settings, executor, with_worker=with_worker)
    return Daemon(settings, executor or Executor(settings))


def _lifespan(
    daemon: ServiceNode, mcp: LazyEndpoint | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start the node (and where the MCP SDK runs) with the app; stop it in every case."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await anyio.to_thread.run_sync(daemon.start)
        except Exception as exc:
            daemon.startup_error = exc
            raise
        mcp_running: AbstractAsyncContextManager[None] = (
            mcp.running() if mcp is not None else nullcontext()
        )
        try:
            async with mcp_running:  # where the MCP SDK runs, once /mcp is used
                yield
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(daemon.stop)

    return lifespan


def _add_health_routes(app: FastAPI) -> None:
    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["health"], summary="Liveness")
    app.add_api_route(
        "/readyz",
        readyz,
        methods=["GET"],
        tags=["health"],
        summary="Readiness",
        responses={503: {"model": ErrorBody, "description": "not ready, with reasons"}},
    )
    app.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        tags=["health"],
        summary="Prometheus metrics",
        dependencies=[Depends(principal_of)],
        response_class=Response,
        responses={401: _ERRORS[401]},
    )


def create_app(
    settings: Settings, executor: RunExecutor | None = None, *, with_worker: bool = False
) -> FastAPI:
    """The ASGI app. Nothing is opened until its lifespan starts.

    ``executor`` defaults to an `Executor` on the configured engine; anything
    shaped like it will do (see `node.RunExecutor`). With ``database_url``
    set the app is a cluster's API node (`cluster.api`): it executes nothing
    unless ``with_worker``.
    """
    daemon = _node(settings, executor, with_worker)
    mcp = mcp_endpoint(daemon)  # /mcp; None without the mcp extra
    app = ApiApp(
        title=TITLE,
        version=__version__,
        summary="Run untrusted Python for AI data agents in throwaway, locked-down containers.",
        lifespan=_lifespan(daemon, mcp),
        extra_models=(RunSubmission,),  # POST /v1/runs reads its body itself
        docs_url=None,  # install_docs serves /docs without a CDN
        redoc_url=None,  # ReDoc exists only on a CDN
    )
    install_docs(app, TITLE)
    app.state.daemon = daemon
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, caps=BodyCaps.of(settings))
    app.add_middleware(AuditMiddleware, log=daemon.audit)  # outside: it sees every answer
    app.include_router(v1)
    _add_health_routes(app)
    if settings.clustered:  # workers read and write the cluster's blobs here
        from ai_data_agent.service.cluster.api import ClusterNode
        from ai_data_agent.service.cluster.blob_routes import install_blob_routes

        install_blob_routes(app, cast(ClusterNode, daemon).blob_server)
    if mcp is not None:
        app.router.routes.append(mcp.route)
    if settings.console_enabled:
        # Imported here: the console's backend imports service modules through the
        # package, whose __init__ imports this module.
        from ai_data_agent.service.console import PATH as CONSOLE_PATH
        from ai_data_agent.service.console import console_app

        app.mount(CONSOLE_PATH, console_app(daemon))
    return app
