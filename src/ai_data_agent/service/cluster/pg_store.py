"""Run records in the shared PostgreSQL: the one-node guarantees, plus admission and claims.

    store = PgRunStore(db, migrate=True)     # an API node migrates; a worker only checks
    store.open()
    record = store.admit(run_id, request, limits)     # cluster-wide bound, or QueueFull
    claimed = store.claim(worker_id)                  # FOR UPDATE SKIP LOCKED: one taker
    store.finish_owned(run_id, worker_id, outcome, artifacts_dir=folder)

The `RunRecords` guarantees hold as for SQLite (the same contract tests run on
both). Admission counts every active run of the cluster under a transaction
advisory lock, so the bound (the live workers' slots plus ``max_queued_runs``)
holds wherever the request lands. A claim moves the oldest queued run to
``running`` under this worker in one statement, and only while the worker's
lease is live; a worker's terminal write is conditional on the run still being
``running`` under it, so a worker whose runs were declared interrupted loses
its late write (and its artifacts with it). Every change another node waits
for is followed by a NOTIFY carrying the run id only (`CHANNEL_QUEUE`,
`CHANNEL_RUN`, `CHANNEL_CANCEL`), sent at commit.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from ai_data_agent.api_models import ACTIVE_RUN_STATUSES, RunRecord
from ai_data_agent.errors import ConfigurationError, QueueFull
from ai_data_agent.models import Limits, RunRequest
from ai_data_agent.service.cluster import pg_events, schema
from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.node import RUN_RETRY_AFTER_S
from ai_data_agent.service.records import Outcome, record_from_row
from ai_data_agent.tenant_models import ADMIN_TENANT

__all__ = ["CHANNEL_CANCEL", "CHANNEL_QUEUE", "CHANNEL_RUN", "Claimed", "PgRunStore"]

CHANNEL_QUEUE = "ada_queue"  # a run was queued: workers with a free slot claim
CHANNEL_RUN = "ada_run"  # a run (or cell) has new events or ended: its followers look
CHANNEL_CANCEL = "ada_cancel"  # a running run was asked to stop: its worker looks
ADMISSION_LOCK = 0x61646132  # pg_advisory_xact_lock key of admissions ("ada2")
OPEN_WAIT_S = 30.0
_COLUMNS = "id, status, created_at, started_at, finished_at, request, result, error, tenant"
Claimed = tuple[str, RunRequest, Limits | None]


class PgRunStore:
    """Run records in PostgreSQL. See the module docstring for the guarantees."""

    def __init__(self, db: Database, *, migrate: bool) -> None:
        self.db = db
        self.path = "postgresql"  # what the daemon logs as where its records are
        self._migrate = migrate

    # -- lifecycle ----------------------------------------------------------------
    def open(self) -> None:
        """Connect (waiting up to 30 s) and bring the schema up to date, or check it.

        Raises:
            ConfigurationError: no connection, or a schema older than this node.
        """
        self.db.open()
        self.db.wait_ready(OPEN_WAIT_S)
        try:
            with self.db.connection() as conn:
                if self._migrate:
                    schema.migrate(conn)
                schema.require(conn)
        except psycopg.Error as exc:
            raise ConfigurationError(f"cannot prepare the database: {exc}") from exc

    def close(self) -> None:
        self.db.close()

    # -- writes -------------------------------------------------------------------
    def insert(
        self,
        run_id: str,
        request: RunRequest,
        *,
        tenant: str = ADMIN_TENANT,
        now: float | None = None,
    ) -> RunRecord:
        with self.db.connection() as conn, conn.transaction():
            return self._insert(conn, run_id, request, None, tenant, now)

    def admit(
        self,
        run_id: str,
        request: RunRequest,
        limits: Limits,
        *,
        max_queued: int,
        lease_s: float,
        tenant: str = ADMIN_TENANT,
        now: float | None = None,
    ) -> RunRecord:
        """Record ``request`` as ``tenant``'s, queued, if the cluster has room; wake the
        workers.

        Room: fewer active runs than the live workers' slots plus ``max_queued``.

        Raises:
            QueueFull: no room; nothing was recorded.
            psycopg.Error: the database failed; nothing was recorded.
        """
        with self.db.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADMISSION_LOCK,))
            row = conn.execute(
                "SELECT (SELECT COUNT(*) FROM runs WHERE status IN ('queued', 'running')), "
                "(SELECT COALESCE(SUM(slots), 0) FROM workers WHERE state = 'live' "
                " AND heartbeat_at > now() - make_interval(secs => %s))",
                (lease_s,),
            ).fetchone()
            active, slots = (int(row[0]), int(row[1])) if row else (0, 0)
            if active >= slots + max_queued:
                raise QueueFull(
                    f"{active} run(s) active in the cluster, the most it takes ({slots} "
                    f"worker slot(s) + {max_queued} queued)",
                    retry_after=RUN_RETRY_AFTER_S,
                )
            return self._insert(conn, run_id, request, limits, tenant, now)

    def _insert(
        self,
        conn: psycopg.Connection,
        run_id: str,
        request: RunRequest,
        limits: Limits | None,
        tenant: str,
        now: float | None,
    ) -> RunRecord:
        created = time.time() if now is None else now
        conn.execute(
            "INSERT INTO runs (id, status, created_at, request, limits, tenant) "
            "VALUES (%s, 'queued', %s, %s, %s, %s)",
            (
                run_id,
                created,
                request.model_dump_json(),
                None if limits is None else limits.model_dump_json(),
                tenant,
            ),
        )
        pg_events.append(conn, run_id, [("status", '{"status": "queued"}')])
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL_QUEUE, run_id))
        return RunRecord(
            id=run_id,
            tenant=tenant,
            status="queued",
            created_at=datetime.fromtimestamp(created, UTC),
            request=request,
        )

    def mark_running(self, run_id: str, *, now: float | None = None) -> bool:
        with self.db.connection() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = 'running', started_at = %s "
                "WHERE id = %s AND status = 'queued'",
                (time.time() if now is None else now, run_id),
            )
        return cursor.rowcount == 1

    def claim(self, worker_id: str, *, now: float | None = None) -> Claimed | None:
        """Take the oldest queued run for ``worker_id`` (while its lease is live), or None."""
        with self.db.connection() as conn:
            row = conn.execute(
                "UPDATE runs SET status = 'running', started_at = %s, worker = %s "
                "WHERE seq = (SELECT seq FROM runs WHERE status = 'queued' ORDER BY seq "
                "  LIMIT 1 FOR UPDATE SKIP LOCKED) "
                "AND EXISTS (SELECT 1 FROM workers WHERE id = %s AND state = 'live') "
                "RETURNING id, request, limits",
                (time.time() if now is None else now, worker_id, worker_id),
            ).fetchone()
        if row is None:
            return None
        run_id, request, limits = row
        return (
            run_id,
            RunRequest.model_validate_json(request),
            None if limits is None else Limits.model_validate_json(limits),
        )

    def finish(self, run_id: str, outcome: Outcome, *, now: float | None = None) -> bool:
        with self.db.connection() as conn, conn.transaction():
            cursor = conn.execute(
                "UPDATE runs SET status = %s, finished_at = %s, result = %s, error = %s "
                "WHERE id = %s AND status IN ('queued', 'running')",
                (*_terminal(outcome, now), run_id),
            )
            if cursor.rowcount == 1:
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL_RUN, run_id))
        return cursor.rowcount == 1

    def finish_owned(
        self,
        run_id: str,
        worker_id: str,
        outcome: Outcome,
        *,
        artifacts_dir: Path | None = None,
        now: float | None = None,
    ) -> bool:
        """A worker's terminal write, with the run's artifacts, in one transaction.

        False (and nothing written) when the run is no longer ``running`` under
        ``worker_id``: someone else decided its end.
        """
        with self.db.connection() as conn, conn.transaction():
            cursor = conn.execute(
                "UPDATE runs SET status = %s, finished_at = %s, result = %s, error = %s "
                "WHERE id = %s AND status = 'running' AND worker = %s",
                (*_terminal(outcome, now), run_id, worker_id),
            )
            if cursor.rowcount != 1:
                return False
            if outcome.result is not None and artifacts_dir is not None:
                pg_events.store_artifacts(conn, run_id, artifacts_dir, outcome.result.artifacts)
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL_RUN, run_id))
        return True

    def request_cancel(self, run_id: str, reason: str, *, now: float | None = None) -> str | None:
        """Cancel a queued run now (``"cancelled"``), or flag a running one and tell its
        worker (``"signalled"``); None when the run is not active."""
        finished = time.time() if now is None else now
        with self.db.connection() as conn, conn.transaction():
            cursor = conn.execute(
                "UPDATE runs SET status = 'cancelled', finished_at = %s, error = %s "
                "WHERE id = %s AND status = 'queued'",
                (finished, reason, run_id),
            )
            if cursor.rowcount == 1:
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL_RUN, run_id))
                return "cancelled"
            cursor = conn.execute(
                "UPDATE runs SET cancel_requested = true WHERE id = %s AND status = 'running'",
                (run_id,),
            )
            if cursor.rowcount == 1:
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL_CANCEL, run_id))
                return "signalled"
        return None

    def interrupt_active(self, reason: str, *, now: float | None = None) -> list[str]:
        """Every active run of the cluster ``interrupted``: for tests and a whole-cluster stop,
        never for one node's start (its peers' runs are not its own)."""
        finished = time.time() if now is None else now
        with self.db.connection() as conn, conn.transaction():
            rows = conn.execute(
                "UPDATE runs SET error = %s || ' (the run was ' || status || ')', "
                "status = 'interrupted', finished_at = %s "
                "WHERE status IN ('queued', 'running') RETURNING id",
                (reason, finished),
            ).fetchall()
            for (run_id,) in rows:
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL_RUN, run_id))
        return [row[0] for row in rows]

    def apply_retention(self, *, max_age_s: float, max_runs: int, now: float | None = None) -> int:
        """Delete finished records (their events and artifacts with them) beyond the bounds."""
        cutoff = (time.time() if now is None else now) - max_age_s
        with self.db.connection() as conn, conn.transaction():
            aged = conn.execute(
                "DELETE FROM runs WHERE status NOT IN ('queued', 'running') AND created_at < %s "
                "RETURNING id",
                (cutoff,),
            ).fetchall()
            # The seq of the oldest record to keep; NULL (nothing deleted) when
            # there are at most max_runs records.
            counted = conn.execute(
                "DELETE FROM runs WHERE status NOT IN ('queued', 'running') AND seq < "
                "(SELECT seq FROM runs ORDER BY seq DESC LIMIT 1 OFFSET %s) RETURNING id",
                (max_runs - 1,),
            ).fetchall()
            gone = [row[0] for row in aged + counted]
            if gone:
                conn.execute("DELETE FROM events WHERE topic = ANY(%s)", (gone,))
        return len(gone)

    def probe_writable(self) -> None:
        """Write one row (the API role's readiness check of the database).

        Raises:
            psycopg.Error: the database cannot be reached or written.
        """
        with self.db.connection(timeout_s=3) as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('ready_probe', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(time.time()),),
            )

    def stale_for(self, worker_id: str, run_ids: list[str]) -> list[str]:
        """Which of a worker's in-flight ``run_ids`` it must stop: ended, taken from it,
        or asked to cancel."""
        if not run_ids:
            return []
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT id FROM runs WHERE id = ANY(%s) AND "
                "(status <> 'running' OR worker IS DISTINCT FROM %s OR cancel_requested)",
                (run_ids, worker_id),
            ).fetchall()
        found = {row[0] for row in rows}
        missing = set(run_ids) - self.known(run_ids)
        return sorted(found | missing)

    # -- reads --------------------------------------------------------------------
    def get(self, run_id: str) -> RunRecord | None:
        with self.db.connection() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM runs WHERE id = %s",  # noqa: S608 (a constant)
                (run_id,),
            ).fetchone()
        return None if row is None else record_from_row(row)

    def is_active(self, run_id: str) -> bool:
        """Whether ``run_id`` is queued or running (one small read, for followers)."""
        with self.db.connection() as conn:
            row = conn.execute("SELECT status FROM runs WHERE id = %s", (run_id,)).fetchone()
        return row is not None and row[0] in ACTIVE_RUN_STATUSES

    def known(self, run_ids: list[str]) -> set[str]:
        if not run_ids:
            return set()
        with self.db.connection() as conn:
            rows = conn.execute("SELECT id FROM runs WHERE id = ANY(%s)", (run_ids,)).fetchall()
        return {row[0] for row in rows}

    def list(
        self,
        *,
        status: str | None = None,
        tenant: str | None = None,
        limit: int = 50,
        offset: int = 0,
        since: float | None = None,
    ) -> tuple[list[RunRecord], int]:
        where = (
            "WHERE (%(s)s::text IS NULL OR status = %(s)s) "
            "AND (%(t)s::text IS NULL OR tenant = %(t)s) "
            "AND (%(since)s::float8 IS NULL OR created_at >= %(since)s)"
        )
        params = {"s": status, "t": tenant, "since": since, "limit": limit, "offset": offset}
        with self.db.connection() as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM runs {where}", params).fetchone()  # noqa: S608 (constants)
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM runs {where} "  # noqa: S608 (constants)
                "ORDER BY seq DESC LIMIT %(limit)s OFFSET %(offset)s",
                params,
            ).fetchall()
        return [record_from_row(row) for row in rows], int(total[0]) if total else 0


def _terminal(outcome: Outcome, now: float | None) -> tuple[Any, ...]:
    """The status, finished_at, result and error columns of a terminal write."""
    result = outcome.result
    return (
        outcome.status.value,
        time.time() if now is None else now,
        None if result is None else result.model_dump_json(),
        outcome.error,
    )
