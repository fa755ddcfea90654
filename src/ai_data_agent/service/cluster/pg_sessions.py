"""The sessions' registry and their calls in the shared database.

    registry = PgSessionRegistry(db, node=worker_id)   # a worker's SessionManager writes it
    call_id = calls.submit("cell", session_id, worker_id, args=request.model_dump_json())
    calls.claim(worker_id, room=True)                  # a worker: its calls, maybe one create
    calls.started(call_id, n=3); calls.done(call_id, result_json)

A session lives on one worker (its container, its kernel): the registry row
says which (``node``). Every operation on it is a row in ``session_calls``
routed to that worker (NOTIFY `CHANNEL_SESSION` with the worker id, or ``*``
for a ``create`` any worker with room may take); the worker answers in the
row and announces it on `CHANNEL_CALL` (the call id). A terminal session is
never written back to live: a worker that was declared lost cannot resurrect
the sessions the cluster already counted as lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.cluster.pg_workers import CHANNEL_CALL
from ai_data_agent.service.quotas import check_sessions
from ai_data_agent.service.session_store import session_of_row
from ai_data_agent.session_models import CellResult, SessionInfo, SessionStatus
from ai_data_agent.tenant_models import ADMIN_TENANT, Quotas

__all__ = ["CHANNEL_SESSION", "STARTS", "Call", "PgSessionCalls", "PgSessionRegistry"]

CHANNEL_SESSION = "ada_session"  # calls wait for a worker (payload: its id, or "*")
ANY_WORKER = "*"
QUOTA_LOCK = 0x61646134  # with the tenant's hash: pg_advisory_xact_lock of its starts ("ada4")
STARTS = ("create", "resume", "fork")  # the calls that start a session: held to the quota


@dataclass(frozen=True)
class Call:
    id: int
    session_id: str
    kind: str
    status: str
    args: str = "{}"
    payload: bytes | None = None
    n: int | None = None
    result: str | None = None
    result_data: bytes | None = None
    error_code: str | None = None
    error: str | None = None
    tenant: str = ADMIN_TENANT  # a create's or a fork's: whose session it starts


class PgSessionRegistry:
    """`session_store.SessionRegistry` in PostgreSQL, as written by one worker (``node``)."""

    def __init__(self, db: Database, *, node: str, prunes: bool = False) -> None:
        self.db = db
        self.node = node
        self._prunes = prunes  # only API nodes may delete (the worker role cannot)

    def open(self) -> None:
        """The database is opened by the node (pool and schema); nothing to do here."""

    def close(self) -> None:
        """The node closes the database."""

    def put(self, info: SessionInfo) -> None:
        """Only the node holding a session writes it, but a paused one is any node's to
        resume (``starting``): a worker declared lost cannot touch what moved elsewhere."""
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO sessions (id, node, status, info, tenant) "
                "VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET node = excluded.node, status = excluded.status, "
                "info = excluded.info WHERE (sessions.status IN ('starting', 'idle', 'busy') "
                "AND sessions.node = excluded.node) OR (sessions.status = 'paused' AND "
                "(sessions.node = excluded.node OR excluded.status = 'starting'))",
                (info.id, self.node, info.status.value, info.model_dump_json(), info.tenant),
            )

    def get(self, session_id: str) -> SessionInfo | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT info, tenant FROM sessions WHERE id = %s", (session_id,)
            ).fetchone()
        return None if row is None else session_of_row(row)

    def node_of(self, session_id: str) -> tuple[str, str] | None:
        """(worker id, status) of a session, or None."""
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT node, status FROM sessions WHERE id = %s", (session_id,)
            ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def recent(self, *, tenant: str | None = None, limit: int = 100) -> list[SessionInfo]:
        """Live first, then the newest (of ``tenant``; None: any)."""
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT info, tenant FROM sessions WHERE (%(t)s::text IS NULL OR tenant = %(t)s) "
                "ORDER BY status IN ('starting', 'idle', 'busy') DESC, seq DESC LIMIT %(limit)s",
                {"t": tenant, "limit": limit},
            ).fetchall()
        return [session_of_row(row) for row in rows]

    def lose_live(self, reason: str) -> list[str]:
        """Only this node's sessions (a new worker id holds none; its peers' are not its own)."""
        with self.db.connection() as conn:
            rows = conn.execute(
                "UPDATE sessions SET status = 'lost', info = (info::jsonb || jsonb_build_object("
                "'status', 'lost', 'error', %s::text, 'idle_expires_at', NULL))::text "
                "WHERE node = %s AND status IN ('starting', 'idle', 'busy') RETURNING id",
                (reason, self.node),
            ).fetchall()
        return [row[0] for row in rows]

    def end_paused(self, session_id: str, status: SessionStatus, reason: str) -> bool:
        """End a paused session (closed, expired); its checkpoints go with it. An API node's."""
        with self.db.connection() as conn, conn.transaction():
            cursor = conn.execute(
                "UPDATE sessions SET status = %s, info = (info::jsonb || jsonb_build_object("
                "'status', %s::text, 'error', %s::text))::text "
                "WHERE id = %s AND status = 'paused'",
                (status.value, status.value, reason, session_id),
            )
            conn.execute("DELETE FROM checkpoints WHERE session_id = %s", (session_id,))
        return cursor.rowcount == 1

    def expire_paused(self, *, older_than_s: float, reason: str) -> list[str]:
        """Paused sessions idle past ``older_than_s`` expire, their checkpoints with them."""
        with self.db.connection() as conn, conn.transaction():
            rows = conn.execute(
                "UPDATE sessions SET status = 'expired', info = (info::jsonb || "
                "jsonb_build_object('status', 'expired', 'error', %s::text))::text "
                "WHERE status = 'paused' AND (info::jsonb->>'last_activity_at')::timestamptz "
                "< now() - make_interval(secs => %s) RETURNING id",
                (reason, older_than_s),
            ).fetchall()
            conn.execute(
                "DELETE FROM checkpoints WHERE session_id IN (SELECT id FROM sessions WHERE "
                "status NOT IN ('starting', 'idle', 'busy', 'paused'))"
            )
        return [str(row[0]) for row in rows]

    def put_cell(self, result: CellResult, code: str | None = None) -> None:
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO cells (session_id, n, result, code) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (session_id, n) DO UPDATE SET result = excluded.result, "
                "code = excluded.code",
                (result.session_id, result.execution_count, result.model_dump_json(), code),
            )

    def cell_code(self, session_id: str, n: int) -> str | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT code FROM cells WHERE session_id = %s AND n = %s", (session_id, n)
            ).fetchone()
        return None if row is None else row[0]

    def get_cell(self, session_id: str, n: int) -> CellResult | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT result FROM cells WHERE session_id = %s AND n = %s", (session_id, n)
            ).fetchone()
        return None if row is None else CellResult.model_validate_json(row[0])

    def delete_before(self, keep: int) -> int:
        """Keep the newest ``keep`` ended sessions; their cells, events and calls go too.

        Only where ``prunes`` (an API node): a worker's role may not delete, and its
        `SessionManager` asks every second; there this returns 0.
        """
        if not self._prunes:
            return 0
        with self.db.connection() as conn, conn.transaction():
            doomed = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM sessions WHERE status NOT IN ('starting', 'idle', 'busy', 'paused') "
                    "ORDER BY seq DESC OFFSET %s",
                    (keep,),
                ).fetchall()
            ]
            if doomed:
                conn.execute("DELETE FROM cells WHERE session_id = ANY(%s)", (doomed,))
                conn.execute("DELETE FROM session_calls WHERE session_id = ANY(%s)", (doomed,))
                conn.execute(
                    "DELETE FROM events WHERE split_part(topic, '/', 1) = ANY(%s) "
                    "AND position('/' in topic) > 0",
                    (doomed,),
                )
                conn.execute("DELETE FROM sessions WHERE id = ANY(%s)", (doomed,))
        return len(doomed)


_CALL_COLUMNS = (
    "id, session_id, kind, status, args, payload, n, result, result_data, error_code, error, tenant"
)


def _call(row: tuple[Any, ...]) -> Call:
    """A `Call` of a row of `_CALL_COLUMNS` (psycopg gives bytea as memoryview)."""
    cid, sid, kind, status, args, payload, n, result, data, code, error, tenant = row
    return Call(
        int(cid),
        str(sid),
        str(kind),
        str(status),
        str(args),
        None if payload is None else bytes(payload),
        None if n is None else int(n),
        None if result is None else str(result),
        None if data is None else bytes(data),
        None if code is None else str(code),
        None if error is None else str(error),
        ADMIN_TENANT if tenant is None else str(tenant),  # a call of an older API node
    )


class PgSessionCalls:
    """The call rows: API nodes submit and read them, workers claim and answer them."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def submit(
        self,
        kind: str,
        session_id: str,
        worker: str | None,
        *,
        args: str = "{}",
        payload: bytes | None = None,
        tenant: str = ADMIN_TENANT,
        quotas: Quotas | None = None,
    ) -> int:
        """A new call; for one of `STARTS`, only if ``tenant``'s ``quotas`` allow one more
        session (`QuotaExceeded` otherwise), counted under a lock per tenant."""
        with self.db.connection() as conn, conn.transaction():
            if kind in STARTS and quotas is not None and quotas.concurrent_sessions is not None:
                conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (QUOTA_LOCK, tenant))
                check_sessions(quotas, tenant, live=_held(conn, tenant))
            row = conn.execute(
                "INSERT INTO session_calls (session_id, worker, kind, args, payload, tenant) "
                "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (session_id, worker, kind, args, payload, tenant),
            ).fetchone()
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL_SESSION, worker or ANY_WORKER))
        assert row is not None
        return int(row[0])

    def get(self, call_id: int) -> Call | None:
        with self.db.connection() as conn:
            row = conn.execute(
                f"SELECT {_CALL_COLUMNS} FROM session_calls WHERE id = %s",  # noqa: S608 (a constant)
                (call_id,),
            ).fetchone()
        return None if row is None else _call(row)

    def running_cell(self, session_id: str, n: int) -> int | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT id FROM session_calls WHERE session_id = %s AND n = %s AND kind = 'cell' "
                "AND status = 'running'",
                (session_id, n),
            ).fetchone()
        return None if row is None else int(row[0])

    def forget(self, call_id: int) -> None:
        """Delete an ended call whose answer was read (uploads and downloads carry bytes)."""
        with self.db.connection() as conn:
            conn.execute(
                "DELETE FROM session_calls WHERE id = %s AND status IN ('done', 'failed')",
                (call_id,),
            )

    def prune(self, *, older_than_s: float) -> int:
        """Delete ended calls older than ``older_than_s`` (answers nobody came back for)."""
        with self.db.connection() as conn:
            cursor = conn.execute(
                "DELETE FROM session_calls WHERE status IN ('done', 'failed') "
                "AND created_at < now() - make_interval(secs => %s)",
                (older_than_s,),
            )
        return cursor.rowcount

    def withdraw(self, call_id: int, code: str, message: str) -> bool:
        """Fail a call no worker has taken yet; False when one has."""
        return self._end(call_id, "failed", None, None, code, message, only_queued=True)

    def claim(self, worker_id: str, *, room: bool) -> list[Call]:
        """This worker's queued calls, and one ``create`` if it has ``room``; now running."""
        with self.db.connection() as conn, conn.transaction():
            rows = conn.execute(
                "UPDATE session_calls SET status = 'running' WHERE id IN ("  # noqa: S608 (a constant)
                "SELECT id FROM session_calls WHERE status = 'queued' AND worker = %s "
                "ORDER BY id FOR UPDATE SKIP LOCKED) "
                f"RETURNING {_CALL_COLUMNS}",
                (worker_id,),
            ).fetchall()
            if room:
                rows += conn.execute(
                    "UPDATE session_calls SET status = 'running', worker = %s WHERE id = ("  # noqa: S608
                    "SELECT id FROM session_calls WHERE status = 'queued' "
                    "AND kind IN ('create', 'resume', 'fork') "
                    "AND worker IS NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) "
                    f"RETURNING {_CALL_COLUMNS}",
                    (worker_id,),
                ).fetchall()
        return sorted((_call(row) for row in rows), key=lambda call: call.id)

    def started(self, call_id: int, *, n: int, session_id: str | None = None) -> None:
        with self.db.connection() as conn, conn.transaction():
            conn.execute(
                "UPDATE session_calls SET n = %s, session_id = COALESCE(%s, session_id) "
                "WHERE id = %s",
                (n, session_id, call_id),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL_CALL, str(call_id)))

    def done(self, call_id: int, result: str | None = None, data: bytes | None = None) -> bool:
        return self._end(call_id, "done", result, data, None, None)

    def failed(self, call_id: int, code: str, message: str, detail: str | None = None) -> bool:
        """The call failed; ``detail`` (JSON of the error body's extra fields, a quota's)
        is kept as its result."""
        return self._end(call_id, "failed", detail, None, code, message)

    def _end(
        self,
        call_id: int,
        status: str,
        result: str | None,
        data: bytes | None,
        code: str | None,
        message: str | None,
        *,
        only_queued: bool = False,
    ) -> bool:
        with self.db.connection() as conn, conn.transaction():
            cursor = conn.execute(
                "UPDATE session_calls SET status = %s, result = %s, result_data = %s, "
                "error_code = %s, error = %s WHERE id = %s AND status = ANY(%s)",
                (
                    status,
                    result,
                    data,
                    code,
                    message,
                    call_id,
                    ["queued"] if only_queued else ["queued", "running"],
                ),
            )
            if cursor.rowcount == 1:
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL_CALL, str(call_id)))
        return cursor.rowcount == 1


def _held(conn: Any, tenant: str) -> int:
    """``tenant``'s sessions live or on their way: idle, busy and starting rows, starts
    (creates, resumes, forks) no worker took, and starts taken whose row is not written yet
    (a running start has a starting row until its session is up; the short while after,
    until its answer, it counts twice: a refusal then errs towards the limit, never past it)."""
    rows = conn.execute(
        "SELECT COUNT(*) FILTER (WHERE status IN ('idle', 'busy')), "
        "COUNT(*) FILTER (WHERE status = 'starting') FROM sessions "
        "WHERE tenant = %s AND status IN ('starting', 'idle', 'busy')",
        (tenant,),
    ).fetchone()
    calls = conn.execute(
        "SELECT COUNT(*) FILTER (WHERE status = 'queued'), "
        "COUNT(*) FILTER (WHERE status = 'running') FROM session_calls "
        "WHERE tenant = %s AND kind = ANY(%s) AND status IN ('queued', 'running')",
        (tenant, list(STARTS)),
    ).fetchone()
    live, starting = (int(rows[0]), int(rows[1])) if rows else (0, 0)
    queued, taken = (int(calls[0]), int(calls[1])) if calls else (0, 0)
    return live + starting + queued + max(taken - starting, 0)
