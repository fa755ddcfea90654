"""``ai-data-agent worker``: a worker node under uvicorn, with /healthz, /readyz and /metrics.

    run_worker(settings, host="127.0.0.1", port=8001)   # blocking, until SIGTERM

The HTTP port answers health and metrics only: a worker accepts no run over
HTTP (runs reach it only through the database). /metrics needs a bearer token
when tokens are configured, as on an API node; off loopback, tokens are
required unless ``insecure``. On SIGTERM the worker claims nothing more and
its runs get ``shutdown_grace_s`` to finish.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
from fastapi import Depends, FastAPI, Request, Response

from ai_data_agent import __version__
from ai_data_agent.errors import ConfigurationError
from ai_data_agent.executor import Executor
from ai_data_agent.service.auth import TokenAuth
from ai_data_agent.service.cluster.worker_node import WorkerNode
from ai_data_agent.service.health import readiness
from ai_data_agent.service.http_errors import install_error_handlers
from ai_data_agent.service.metrics import CONTENT_TYPE, ServiceMetrics
from ai_data_agent.service.node import RunExecutor
from ai_data_agent.service.serving import check_bind_policy, configure_server_logging, run_app
from ai_data_agent.settings import Settings

__all__ = ["create_worker_app", "run_worker"]


def _node(request: Request) -> WorkerNode:
    return cast(WorkerNode, request.app.state.node)


def create_worker_app(settings: Settings, executor: RunExecutor | None = None) -> FastAPI:
    node = WorkerNode(settings, executor or Executor(settings), ServiceMetrics())
    auth = TokenAuth(settings, None)  # the operator's tokens: a worker reads no tenant store

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
        auth.principal(request.headers.get("authorization"))

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: engine, image, database and lease")
    async def readyz(request: Request) -> dict[str, Any]:
        return await readiness(_node(request), request.app)

    @app.get("/metrics", summary="Prometheus metrics", dependencies=[Depends(require_token)])
    async def metrics(request: Request) -> Response:
        return Response(_node(request).metrics.render(), media_type=CONTENT_TYPE)

    return app


def run_worker(
    settings: Settings, host: str = "127.0.0.1", port: int = 8001, insecure: bool = False
) -> None:
    """Run a worker until SIGTERM/SIGINT (blocking): it stops claiming at the signal.

    Raises:
        ConfigurationError: no ``database_url``, a non-loopback ``host`` without
            tokens, or a worker that could not start (database, schema, port).
    """
    if not settings.clustered:
        raise ConfigurationError(
            "a worker needs AI_DATA_AGENT_DATABASE_URL (postgresql://...): it takes its runs "
            "from the cluster's database"
        )
    configure_server_logging(settings)
    check_bind_policy(settings, host, insecure)
    app = create_worker_app(settings)
    run_app(app, app.state.node, settings, host, port, what="worker")
