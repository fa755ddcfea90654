"""The HTTP daemon: durable run records, a bounded queue, auth and metrics over the executor.

    from ai_data_agent.service import create_app, serve

    serve(Settings(), host="127.0.0.1", port=8000)      # blocking, under uvicorn
    app = create_app(Settings())                        # the ASGI app, for tests or mounting

A request meets, in order: `server` and `serving` (uvicorn, the bind policy,
logging, the drain at SIGTERM), `app` (the routes; `session_routes` for
sessions, `mcp` for ``/mcp``, `console` for ``/console``), `body_limit`, `auth`, `submission` (a POST body,
validated once), `runs` (what a client does with runs, the same for the
routes and ``/mcp``), then the node behind them, seen only through `node`
(its contracts: `ServiceNode`, `RunDispatcher`, `SessionService`,
`RunExecutor`). One node (`daemon`) is `dispatcher` (the bounded queue and its
worker threads), `sessions` (a kernel per session), `store` and
`session_store` (SQLite, under the contracts of `records`), `reaper` and
`prewarm`. Every claimed run is executed by `execution`, here and on a
cluster's worker; `handles` is what a waiting request holds (`RunHandle`,
`CellHandle`), `events` their live events, `health` the readiness checks,
`http_errors` the one place exceptions become answers, `info` and `metrics`.
With ``database_url`` set, `cluster` takes the place of dispatcher, stores and
daemon (PostgreSQL; docs/scale-out.md). The API is described in docs/api.md.
"""

from ai_data_agent.service.app import create_app
from ai_data_agent.service.server import serve

__all__ = ["create_app", "serve"]
