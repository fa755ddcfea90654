"""Durable run records in SQLite: written before a container exists, finished exactly once.

    store = RunStore(settings.data_dir / "runs.sqlite3")
    store.open()
    record = store.insert("3f2a...", RunRequest(code="print(1)"))
    store.mark_running(record.id)
    store.finish(record.id, Outcome(RunStatus.SUCCEEDED, result))
    store.close()

Every method is blocking and thread-safe (one connection behind a lock); call
them from worker threads, never from the event loop. Each write is a single
autocommitted statement (or one explicit transaction) in WAL mode with
``synchronous=FULL``, so a record acknowledged to a client survives ``kill -9``
and power loss. Terminal updates are conditional on the record still being
``queued`` or ``running``: whoever gets there first decides the one terminal state.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from ai_data_agent.api_models import ActiveStatus, RunRecord
from ai_data_agent.models import RunRequest
from ai_data_agent.service.records import Outcome, record_from_row
from ai_data_agent.service.sqlite import SqliteFile
from ai_data_agent.tenant_models import ADMIN_TENANT

__all__ = ["STORE_FILENAME", "RunStore"]

STORE_FILENAME = "runs.sqlite3"
SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order: newest first
    id          TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL,
    created_at  REAL NOT NULL,                      -- unix seconds
    started_at  REAL,
    finished_at REAL,
    request     TEXT NOT NULL,                      -- RunRequest JSON
    result      TEXT,                               -- RunResult JSON, when a container ran
    error       TEXT,
    tenant      TEXT NOT NULL DEFAULT 'admin'       -- the tenant whose token submitted it
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, seq);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at);
CREATE INDEX IF NOT EXISTS runs_by_status_created ON runs (status, created_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# A file of version 1 had no tenants: its runs belong to the built-in admin tenant.
COLUMNS = (("runs", "tenant", "TEXT NOT NULL DEFAULT 'admin'"),)
INDEXES = """
CREATE INDEX IF NOT EXISTS runs_by_tenant ON runs (tenant, seq);
CREATE INDEX IF NOT EXISTS runs_by_tenant_status ON runs (tenant, status, seq);
"""
_COLUMNS = "id, status, created_at, started_at, finished_at, request, result, error, tenant"
# SQL is written out literally (`list` joins constant conditions, nothing else); the
# active statuses appear as "('queued', 'running')", matching ACTIVE_RUN_STATUSES.


class RunStore(SqliteFile):
    """Run records in one SQLite file. See the module docstring for the guarantees."""

    def __init__(self, path: Path) -> None:
        # FULL: a commit is on disk (WAL fsync'd) before it returns, so an
        # acknowledged run survives power loss, not just a crash.
        pragmas = ("synchronous=FULL", f"user_version={SCHEMA_VERSION}")
        super().__init__(
            path,
            what="the run store",
            schema=SCHEMA,
            pragmas=pragmas,
            columns=COLUMNS,
            after=INDEXES,
        )

    # -- writes -------------------------------------------------------------------
    def insert(
        self,
        run_id: str,
        request: RunRequest,
        *,
        tenant: str = ADMIN_TENANT,
        now: float | None = None,
    ) -> RunRecord:
        """Record a new ``queued`` run of ``tenant``; durable when this returns."""
        created = time.time() if now is None else now
        with self._lock:
            self._db().execute(
                "INSERT INTO runs (id, status, created_at, request, tenant) "
                "VALUES (?, 'queued', ?, ?, ?)",
                (run_id, created, request.model_dump_json(), tenant),
            )
        return RunRecord(
            id=run_id,
            tenant=tenant,
            status=ActiveStatus.QUEUED,
            created_at=datetime.fromtimestamp(created, UTC),
            request=request,
        )

    def mark_running(self, run_id: str, *, now: float | None = None) -> bool:
        """``queued`` -> ``running``; False when the run is no longer queued."""
        with self._lock:
            cursor = self._db().execute(
                "UPDATE runs SET status = 'running', started_at = ? "
                "WHERE id = ? AND status = 'queued'",
                (time.time() if now is None else now, run_id),
            )
        return cursor.rowcount == 1

    def finish(self, run_id: str, outcome: Outcome, *, now: float | None = None) -> bool:
        """Give an active run its one terminal state; False when it already had one."""
        result = outcome.result
        with self._lock:
            cursor = self._db().execute(
                "UPDATE runs SET status = ?, finished_at = ?, result = ?, error = ? "
                "WHERE id = ? AND status IN ('queued', 'running')",
                (
                    outcome.status.value,
                    time.time() if now is None else now,
                    None if result is None else result.model_dump_json(),
                    outcome.error,
                    run_id,
                ),
            )
        return cursor.rowcount == 1

    def interrupt_active(self, reason: str, *, now: float | None = None) -> list[str]:
        """Mark every ``queued`` or ``running`` record ``interrupted``; return their ids.

        For a daemon's start (records a dead process left behind) and its last
        word at shutdown. The reason says which state each run was in.
        """
        finished = time.time() if now is None else now
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute(
                    "SELECT id, status FROM runs WHERE status IN ('queued', 'running')"
                )
                stale = rows.fetchall()
                db.executemany(
                    "UPDATE runs SET status = 'interrupted', finished_at = ?, error = ? "
                    "WHERE id = ? AND status IN ('queued', 'running')",
                    [(finished, f"{reason} (the run was {status})", rid) for rid, status in stale],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return [rid for rid, _ in stale]

    def apply_retention(self, *, max_age_s: float, max_runs: int, now: float | None = None) -> int:
        """Delete finished records older than ``max_age_s`` or beyond the newest ``max_runs``.

        Active records are never deleted. Returns how many records went.
        """
        cutoff = (time.time() if now is None else now) - max_age_s
        with self._lock:
            db = self._db()
            by_age = db.execute(
                "DELETE FROM runs WHERE status NOT IN ('queued', 'running') AND created_at < ?",
                (cutoff,),
            ).rowcount
            # The seq of the oldest record to keep; NULL (nothing deleted) when
            # there are at most max_runs records.
            by_count = db.execute(
                "DELETE FROM runs WHERE status NOT IN ('queued', 'running') AND seq < "
                "(SELECT seq FROM runs ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (max_runs - 1,),
            ).rowcount
        return by_age + by_count

    def probe_writable(self) -> None:
        """Write (and sync) one row, as the readiness check of the store.

        Raises:
            sqlite3.Error: the database cannot be written (disk full, read-only, gone).
        """
        with self._lock:
            self._db().execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('ready_probe', ?)",
                (str(time.time()),),
            )

    # -- reads --------------------------------------------------------------------
    def get(self, run_id: str) -> RunRecord | None:
        with self._lock:
            cursor = self._db().execute(
                f"SELECT {_COLUMNS} FROM runs WHERE id = ?",  # noqa: S608 (a constant)
                (run_id,),
            )
            row = cursor.fetchone()
        return None if row is None else record_from_row(row)

    def known(self, run_ids: list[str]) -> set[str]:
        """Which of ``run_ids`` still have a record."""
        if not run_ids:
            return set()
        with self._lock:
            rows = (
                self._db()
                .execute(
                    f"SELECT id FROM runs WHERE id IN ({','.join('?' * len(run_ids))})",  # noqa: S608 (placeholders only)
                    run_ids,
                )
                .fetchall()
            )
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
        """A page of records, newest first, and the total matching ``status``, ``tenant``
        and created at or after ``since`` (None: any).

        The statement has only the conditions given (each a constant), so that SQLite
        can walk the index of that shape in ``seq`` order rather than sort.
        """
        conditions = []
        if status is not None:
            conditions.append("status = :status")
        if tenant is not None:
            conditions.append("tenant = :tenant")
        if since is not None:
            # +created_at with another filter: walk that filter's index in seq order.
            conditions.append("+created_at >= :since" if conditions else "created_at >= :since")
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        params = {"status": status, "tenant": tenant, "since": since}
        params |= {"limit": limit, "offset": offset}
        window = "ORDER BY seq DESC LIMIT :limit OFFSET :offset"
        page = f"FROM runs {where} {window}"
        if since is not None and len(conditions) == 1:
            # Alone, the age would be checked row by row in seq order (every row when few
            # match): the page's seqs come from the covering index instead, no row read.
            seqs = f"SELECT seq FROM runs INDEXED BY runs_by_created {where} {window}"  # noqa: S608 (constants)
            page = f"FROM runs WHERE seq IN ({seqs}) ORDER BY seq DESC"
        with self._lock:
            db = self._db()
            total = db.execute(f"SELECT COUNT(*) FROM runs {where}", params).fetchone()[0]  # noqa: S608 (constants)
            rows = db.execute(f"SELECT {_COLUMNS} {page}", params).fetchall()
        return [record_from_row(row) for row in rows], int(total)
