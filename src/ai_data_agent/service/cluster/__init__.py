"""PostgreSQL as the shared store and queue: API nodes and workers on many machines.

    AI_DATA_AGENT_DATABASE_URL=postgresql://ai_data_agent_api@db/ai_data_agent ai-data-agent serve
    AI_DATA_AGENT_DATABASE_URL=postgresql://ai_data_agent_worker@db/ai_data_agent ai-data-agent worker

Nothing here is imported unless ``database_url`` is set (psycopg is the optional
extra ``ai-data-agent[postgres]``). Modules, from the bottom: `db` (connections,
LISTEN), `schema` (versioned migrations), `pg_store` (run records, admission,
claims), `pg_events` (events and artifacts), `pg_workers` (the registry,
heartbeats, leases), `pg_sessions` (the sessions' registry and their calls),
`follower` (an API node's view of runs executing elsewhere), `api` (the API
node), `worker` and `worker_sessions` (a worker node), `worker_app` (its
/healthz and /metrics). docs/scale-out.md describes the design and its guarantees.
"""
