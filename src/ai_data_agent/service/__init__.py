"""The HTTP daemon: durable run records, a bounded queue, auth and metrics over the executor.

    from ai_data_agent.service import create_app, serve

    serve(Settings(), host="127.0.0.1", port=8000)      # blocking, under uvicorn
    app = create_app(Settings())                        # the ASGI app, for tests or mounting

Modules, in the order a request meets them: `server` (uvicorn, bind policy,
logging), `app` (routes), `body_limit`, `auth`, `submission` (the POST body,
validated once), `http_errors` (exceptions to answers, in one place), `info`
(``GET /v1/info``), `node` (what the routes need of the node behind them),
`dispatcher` (queue and worker threads), `records` (the store contract),
`store` (SQLite records), `daemon` (wiring, start and stop), `reaper` (sweeps,
retention), `metrics`. With ``database_url`` set, `cluster` takes the place of
store, dispatcher and daemon (PostgreSQL; docs/scale-out.md). The API is
described in docs/api.md.
"""

from ai_data_agent.service.app import create_app
from ai_data_agent.service.server import serve

__all__ = ["create_app", "serve"]
