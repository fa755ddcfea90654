"""PostgreSQL as the shared store and queue: API nodes and workers on many machines.

    AI_DATA_AGENT_DATABASE_URL=postgresql://ai_data_agent_api@db/ai_data_agent ai-data-agent serve
    AI_DATA_AGENT_DATABASE_URL=postgresql://ai_data_agent_worker@db/ai_data_agent ai-data-agent worker

Nothing here is imported unless ``database_url`` is set (psycopg is the optional
extra ``ai-data-agent[postgres]``). Modules, from the bottom: `db` (connections,
LISTEN), `schema` (versioned migrations), `pg_store` (run records, admission,
claims), `pg_events` (events and artifacts), `pg_workers` (the registry,
heartbeats, leases), `pg_sessions` (the sessions' registry and their calls).
An API node: `api` (admission, cancel, housekeeping), `follower` (its view of
runs executing elsewhere), `api_sessions` (session calls routed to workers).
A worker: `worker` (claims, runs, lease), `pump` (its outgoing events),
`worker_sessions` (the calls it answers), `worker_node` (the parts wired),
`worker_app` (/healthz, /readyz, /metrics under uvicorn). docs/scale-out.md
describes the design and its guarantees.
"""
