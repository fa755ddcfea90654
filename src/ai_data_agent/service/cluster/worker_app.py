"""``ai-data-agent worker``: a worker node under uvicorn, with /healthz, /readyz and /metrics.

    run_worker(settings, host="127.0.0.1", port=8001)   # blocking, until SIGTERM

The HTTP port answers health and metrics only: a worker accepts no run over
HTTP (runs reach it only through the database). /metrics needs a bearer token
when tokens are configured, as on an API node; off loopback, tokens are
required unless ``insecure``. On SIGTERM the worker claims nothing more and
its runs get ``shutdown_grace_s`` to finish.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import uvicorn
from fastapi import Depends, FastAPI, Request, Response

from ai_data_agent import __version__
from ai_data_agent.checks import Check
from ai_data_agent.errors import ConfigurationError, NotReady
from ai_data_agent.executor import Executor
from ai_data_agent.logs import configure_logging
from ai_data_agent.service.auth import TokenAuth
from ai_data_agent.service.cluster.worker import STOP_SLACK_S
from ai_data_agent.service.cluster.worker_node import WorkerNode
from ai_data_agent.service.dispatcher import RunExecutor
from ai_data_agent.service.http_errors import install_error_handlers
from ai_data_agent.service.metrics import CONTENT_TYPE, ServiceMetrics
from ai_data_agent.service.server import _InterceptHandler, check_bind_policy
from ai_data_agent.settings import Settings

__all__ = ["create_worker_app", "run_worker"]

READY_TIMEOUT_S = 5.0


def _node(request: Request) -> WorkerNode:
    return cast(WorkerNode, request.app.state.node)


def create_worker_app(settings: Settings, executor: RunExecutor | None = None) -> FastAPI:
    node = WorkerNode(settings, executor or Executor(settings), ServiceMetrics())
    auth = TokenAuth(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await anyio.to_thread.run_sync(node.start)
        except Exception as exc:
            node.startup_error = exc
            raise
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(node.stop)

    app = FastAPI(title="ai-data-agent worker", version=__version__, lifespan=lifespan)
    app.state.node = node
    install_error_handlers(app)

    def require_token(request: Request) -> None:
        auth.verify(request.headers.get("authorization"))

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: engine, image, database and lease")
    async def readyz(request: Request) -> dict[str, Any]:
        node = _node(request)
        checks: dict[str, Check] = {}

        async def run(name: str, probe: Any) -> None:
            checks[name] = Check(name, False, f"no answer within {READY_TIMEOUT_S:g} s")
            with anyio.move_on_after(READY_TIMEOUT_S):
                checks[name] = await anyio.to_thread.run_sync(probe, abandon_on_cancel=True)

        async with anyio.create_task_group() as group:
            for name, probe in node.probes().items():
                group.start_soon(run, name, probe)
        checks.update((c.name, c) for c in node.instant_checks())
        failed = [c for c in checks.values() if not c.ok]
        if failed:
            raise NotReady("; ".join(f"{c.name}: {c.detail}" for c in failed))
        return {"status": "ready", "checks": {n: c.detail for n, c in sorted(checks.items())}}

    @app.get("/metrics", summary="Prometheus metrics", dependencies=[Depends(require_token)])
    async def metrics(request: Request) -> Response:
        return Response(_node(request).metrics.render(), media_type=CONTENT_TYPE)

    return app


class _Server(uvicorn.Server):
    """Tell the worker to stop claiming as soon as shutdown begins."""

    def __init__(self, config: uvicorn.Config, node: WorkerNode) -> None:
        super().__init__(config)
        self.node = node

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await anyio.to_thread.run_sync(self.node.begin_shutdown)
        await super().shutdown(sockets)


def run_worker(
    settings: Settings, host: str = "127.0.0.1", port: int = 8001, insecure: bool = False
) -> None:
    """Run a worker until SIGTERM/SIGINT (blocking).

    Raises:
        ConfigurationError: no ``database_url``, a non-loopback ``host`` without
            tokens, or a worker that could not start (database, schema, port).
    """
    if not settings.clustered:
        raise ConfigurationError(
            "a worker needs AI_DATA_AGENT_DATABASE_URL (postgresql://...): it takes its runs "
            "from the cluster's database"
        )
    configure_logging(settings.log_level, json=settings.log_format == "json")
    logging.basicConfig(handlers=[_InterceptHandler()], level=settings.log_level, force=True)
    if settings.log_level not in ("TRACE", "DEBUG"):  # the database pool narrates at INFO
        logging.getLogger("psycopg").setLevel(logging.WARNING)
    check_bind_policy(settings, host, insecure)
    app = create_worker_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s + STOP_SLACK_S),
    )
    server = _Server(config, app.state.node)
    try:
        server.run()
    except SystemExit as exc:
        raise ConfigurationError(f"the worker could not listen on {host}:{port}") from exc
    if not server.started:
        reason = app.state.node.startup_error or "see the log above"
        raise ConfigurationError(f"the worker did not start: {reason}")
