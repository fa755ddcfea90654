"""The cluster's schema: numbered migrations, applied in order at an API node's start.

    migrate(conn)                    # under an advisory lock: one node migrates, others wait
    version(conn)                    # the highest applied; 0 on an empty database
    require(conn)                    # a worker: the schema must be at least what it knows

Each migration is one SQL text, applied in one transaction with its number
recorded in ``schema_migrations``, never edited once released: a change is a
new number. Migrations only add (tables, columns, indexes), so workers of the
previous version keep working while API nodes move first (docs/scale-out.md,
"Upgrades"). The API role owns the tables; a role named ``ai_data_agent_worker``,
where it exists, is granted only what a worker does (no deletes, no new runs).
"""

from __future__ import annotations

from typing import LiteralString

import psycopg

from ai_data_agent.errors import ConfigurationError

__all__ = ["LATEST", "MIGRATIONS", "WORKER_ROLE", "migrate", "require", "version"]

WORKER_ROLE = "ai_data_agent_worker"
MIGRATION_LOCK = 0x61646131  # pg_advisory_xact_lock key of migrations ("ada1")

# Grants for the worker role, in a DO block so that a database without it
# (one role for everything, as in a quick test) migrates all the same.
_GRANT_V1: LiteralString = """
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ai_data_agent_worker') THEN
    -- Claim and finish only: a worker cannot rewrite a run's request or limits.
    GRANT SELECT ON runs TO ai_data_agent_worker;
    GRANT UPDATE (status, started_at, finished_at, result, error, worker)
      ON runs TO ai_data_agent_worker;
    GRANT SELECT, INSERT ON events, artifacts TO ai_data_agent_worker;
    GRANT SELECT, INSERT, UPDATE ON workers TO ai_data_agent_worker;
    GRANT SELECT ON schema_migrations TO ai_data_agent_worker;
    GRANT USAGE ON SEQUENCE events_seq_seq TO ai_data_agent_worker;
  END IF;
END $$;
"""

V1: LiteralString = (
    """
CREATE TABLE runs (
    seq              BIGSERIAL PRIMARY KEY,          -- insertion order: newest first
    id               TEXT NOT NULL UNIQUE,
    status           TEXT NOT NULL,
    created_at       DOUBLE PRECISION NOT NULL,      -- unix seconds
    started_at       DOUBLE PRECISION,
    finished_at      DOUBLE PRECISION,
    request          TEXT NOT NULL,                  -- RunRequest JSON
    limits           TEXT,                           -- Limits JSON, resolved at admission
    result           TEXT,                           -- RunResult JSON
    error            TEXT,
    worker           TEXT,                           -- the worker that claimed it
    cancel_requested BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX runs_by_status ON runs (status, seq);
CREATE INDEX runs_running_by_worker ON runs (worker) WHERE status = 'running';
-- Live events of runs (topic: the run id) and cells (topic: session id/n), for SSE.
CREATE TABLE events (
    seq   BIGSERIAL PRIMARY KEY,
    topic TEXT NOT NULL,
    name  TEXT NOT NULL,
    data  TEXT NOT NULL
);
CREATE INDEX events_by_topic ON events (topic, seq);
-- Artifacts in chunks; they go with their record.
CREATE TABLE artifacts (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    path   TEXT NOT NULL,
    chunk  INTEGER NOT NULL,
    data   BYTEA NOT NULL,
    PRIMARY KEY (run_id, path, chunk)
);
-- Workers and their leases, in the database's own clock.
CREATE TABLE workers (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    slots         INTEGER NOT NULL,
    state         TEXT NOT NULL,                     -- live, stopped, lost
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    version       TEXT NOT NULL DEFAULT ''
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
    + _GRANT_V1
)

V2: LiteralString = """
-- The sessions' registry (a session lives on the worker in `node`) and its cells.
CREATE TABLE sessions (
    seq     BIGSERIAL PRIMARY KEY,
    id      TEXT NOT NULL UNIQUE,
    node    TEXT NOT NULL,
    status  TEXT NOT NULL,
    info    TEXT NOT NULL                          -- SessionInfo JSON
);
CREATE INDEX sessions_by_status ON sessions (status, seq);
CREATE INDEX sessions_by_node ON sessions (node) WHERE status IN ('starting', 'idle', 'busy');
CREATE TABLE cells (
    session_id TEXT NOT NULL,
    n          INTEGER NOT NULL,
    result     TEXT NOT NULL,                      -- CellResult JSON
    PRIMARY KEY (session_id, n)
);
-- Calls on sessions, routed to the worker that holds the session (create: any worker).
CREATE TABLE session_calls (
    id          BIGSERIAL PRIMARY KEY,
    session_id  TEXT NOT NULL,
    worker      TEXT,
    kind        TEXT NOT NULL,
    args        TEXT NOT NULL DEFAULT '{}',
    payload     BYTEA,
    status      TEXT NOT NULL DEFAULT 'queued',    -- queued, running, done, failed
    n           INTEGER,                           -- a cell's execution count
    result      TEXT,
    result_data BYTEA,
    error_code  TEXT,
    error       TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX session_calls_queued ON session_calls (worker, id) WHERE status = 'queued';
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ai_data_agent_worker') THEN
    GRANT SELECT, INSERT, UPDATE ON sessions, cells TO ai_data_agent_worker;
    GRANT SELECT, UPDATE ON session_calls TO ai_data_agent_worker;
    GRANT USAGE ON SEQUENCE sessions_seq_seq TO ai_data_agent_worker;
  END IF;
END $$;
"""

V3: LiteralString = """
-- The live API nodes and the URL workers reach them at, for the cluster's blobs.
CREATE TABLE api_nodes (
    id           TEXT PRIMARY KEY,
    url          TEXT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The secret nodes present to each other's internal routes, made once: 244 bits
-- from the server's strong random source (gen_random_uuid, in core since 13).
INSERT INTO meta (key, value)
  VALUES ('node_secret', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''))
  ON CONFLICT (key) DO NOTHING;
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ai_data_agent_worker') THEN
    GRANT SELECT ON api_nodes, meta TO ai_data_agent_worker;
  END IF;
END $$;
"""

V4: LiteralString = """
-- Tenants: every run and session has an owner; rows made before belong to 'admin'.
ALTER TABLE runs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'admin';
CREATE INDEX runs_by_tenant ON runs (tenant, seq);
ALTER TABLE sessions ADD COLUMN tenant TEXT NOT NULL DEFAULT 'admin';
CREATE INDEX sessions_by_tenant ON sessions (tenant, seq);
ALTER TABLE session_calls ADD COLUMN tenant TEXT;              -- a create's owner
CREATE TABLE tenants (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL,                  -- admin, agent
    quotas     TEXT NOT NULL,                  -- Quotas JSON
    created_at DOUBLE PRECISION NOT NULL,
    builtin    BOOLEAN NOT NULL DEFAULT false
);
CREATE TABLE tokens (
    name         TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL REFERENCES tenants (name),
    digest       TEXT NOT NULL UNIQUE,         -- sha256 of the secret, hex; never the secret
    created_at   DOUBLE PRECISION NOT NULL,
    last_used_at DOUBLE PRECISION,
    expires_at   DOUBLE PRECISION,
    revoked_at   DOUBLE PRECISION
);
CREATE TABLE audit (
    seq       BIGSERIAL PRIMARY KEY,
    at        DOUBLE PRECISION NOT NULL,        -- unix seconds
    tenant    TEXT,
    token     TEXT,
    action    TEXT NOT NULL,
    object_id TEXT,
    status    INTEGER NOT NULL,
    code      TEXT,
    client    TEXT
);
CREATE INDEX audit_by_tenant ON audit (tenant, seq);
CREATE INDEX audit_by_at ON audit (at);
"""
# A worker is granted nothing new: it reads a create's owner through its grant on
# session_calls, and never reads tokens or the audit log (V5 lets it read tenants).

V5: LiteralString = """
-- Datasets: named per tenant, immutable numbered versions, each naming a manifest of
-- files (content-addressed blobs in the shared storage directory).
CREATE TABLE datasets (
    tenant       TEXT NOT NULL,
    name         TEXT NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL,
    next_version INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE dataset_versions (
    tenant     TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    digest     TEXT NOT NULL,
    size       BIGINT NOT NULL,
    files      INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    source     TEXT NOT NULL,
    source_id  TEXT,
    PRIMARY KEY (tenant, name, version)
);
CREATE INDEX dataset_versions_by_digest ON dataset_versions (digest);
CREATE TABLE manifests (
    digest      TEXT PRIMARY KEY,
    size        BIGINT NOT NULL,
    files       INTEGER NOT NULL,
    description TEXT
);
CREATE TABLE manifest_files (
    digest TEXT NOT NULL,
    path   TEXT NOT NULL,
    size   BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (digest, path)
);
CREATE INDEX manifest_files_by_blob ON manifest_files (sha256);
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ai_data_agent_worker') THEN
    -- A worker reads manifests to mount versions, and records the versions that
    -- sessions and runs promote (never deletes), within their tenant's storage quota.
    GRANT SELECT, INSERT, UPDATE ON datasets, dataset_versions, manifests, manifest_files
      TO ai_data_agent_worker;
    GRANT SELECT (name, role, quotas, created_at, builtin) ON tenants TO ai_data_agent_worker;
  END IF;
END $$;
"""

V6: LiteralString = """
-- Checkpoints of sessions: taken on the worker that holds one, resumed on any (pg_checkpoints).
CREATE TABLE checkpoints (
    session_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    tenant     TEXT NOT NULL,
    record     TEXT NOT NULL,                      -- CheckpointRecord JSON, its MAC included
    blobs      TEXT NOT NULL,                      -- {digest: size} of the blobs it names
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX checkpoints_by_tenant ON checkpoints (tenant);
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ai_data_agent_worker') THEN
    -- Take and read checkpoints (their key is in meta); prune: API nodes only.
    GRANT SELECT, INSERT ON checkpoints TO ai_data_agent_worker;
  END IF;
END $$;
"""

V7: LiteralString = """
-- Quotas: a run carries its tenant's concurrent_runs as admitted (NULL: no cap), so a
-- worker's claim skips a tenant at its cap without reading the tenants table.
ALTER TABLE runs ADD COLUMN tenant_cap INTEGER;
CREATE INDEX runs_running_by_tenant ON runs (tenant) WHERE status = 'running';
"""

V8: LiteralString = """
-- A cell's code beside its result, for the console (NULL: a cell recorded without it).
ALTER TABLE cells ADD COLUMN code TEXT;
"""

MIGRATIONS: tuple[tuple[int, LiteralString], ...] = (
    (1, V1),
    (2, V2),
    (3, V3),
    (4, V4),
    (5, V5),
    (6, V6),
    (7, V7),
    (8, V8),
)
LATEST = MIGRATIONS[-1][0]


def version(conn: psycopg.Connection) -> int:
    """The highest migration applied; 0 when there is none."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: psycopg.Connection, target: int = LATEST) -> list[int]:
    """Apply the migrations above the database's version, up to ``target``; return them.

    One transaction per migration, all under a transaction-level advisory lock,
    so API nodes starting together migrate once.
    """
    applied = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        current = version(conn)
        for number, text in MIGRATIONS:
            if current < number <= target:
                with conn.transaction():
                    conn.execute(text)
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (number,))
                applied.append(number)
    return applied


def require(conn: psycopg.Connection, needed: int = LATEST) -> int:
    """The schema version, when it is at least ``needed``.

    Raises:
        ConfigurationError: the schema is older (start an API node of this version first).
    """
    found = version(conn)
    if found < needed:
        raise ConfigurationError(
            f"the database schema is at version {found}, this node needs {needed}: start an "
            "API node of this version first (it migrates), then the workers"
        )
    return found
