"""PostgreSQL as the shared store and queue: API nodes and workers on many machines.

    AI_DATA_AGENT_DATABASE_URL=postgresql://ai_data_agent_api@db/ai_data_agent ai-data-agent serve
    AI_DATA_AGENT_DATABASE_URL=postgresql://ai_data_agent_worker@db/ai_data_agent ai-data-agent worker

Nothing here is imported unless ``database_url`` is set (psycopg is the optional
extra ``ai-data-agent[postgres]``). The routes, ``/mcp``, the execution core and
the node contracts are the service's own (`ai_data_agent.service`); only where
runs and sessions are kept and how they cross machines is here.

A request to an API node meets, in order: `api` (`ClusterNode`: the node's parts
and housekeeping), `api_dispatcher` (admission bounded cluster-wide, cancel),
`follower` (the `RunHandle` of a
run executing elsewhere, fed from the database) or `api_sessions` (a session
call routed to its worker as a row). A worker meets the same run from the
other side: `worker` (claims, `execution.execute_run`, the lease), `pump` (its
outgoing events), `worker_sessions` (the session calls it answers),
`worker_node` (the parts wired) and `worker_app` (/healthz, /readyz, /metrics
under uvicorn). Beneath both: `db` (connections, LISTEN), `schema` (versioned
migrations), `pg_store` (run records, admission, claims), `pg_events` (events
and artifacts), `pg_workers` (the registry, heartbeats, leases), `pg_sessions`
(the sessions' registry and their calls). docs/scale-out.md describes the
design and its guarantees.
"""
