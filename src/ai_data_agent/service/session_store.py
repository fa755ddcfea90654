"""The sessions' registry: which sessions exist, where they live, and their cells' results.

    store = SessionStore(settings.data_dir / "sessions.sqlite3", node="ctl-1a2b")
    store.open()
    store.put(info)                       # a session's latest state (live or ended)
    store.put_cell(result)                # a cell's result, once it has one
    store.lose_live("the daemon restarted")

A session lives in one controller process (its container, its kernel); the
registry says so with the ``node`` column, so that any node answering for it
can tell where it is, and a node that restarts marks what it held as lost,
never as alive. SQLite in WAL mode here; the same operations suit a shared
database. Every method is blocking and thread-safe; call them from worker
threads, never from the event loop.
"""

from __future__ import annotations

from pathlib import Path

from ai_data_agent.service.sqlite import SqliteFile
from ai_data_agent.session_models import CellResult, SessionInfo, SessionStatus

__all__ = ["SESSIONS_FILENAME", "SessionStore", "session_of_row"]

SESSIONS_FILENAME = "sessions.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    id      TEXT NOT NULL UNIQUE,
    node    TEXT NOT NULL,
    status  TEXT NOT NULL,
    info    TEXT NOT NULL,                -- SessionInfo JSON
    tenant  TEXT NOT NULL DEFAULT 'admin' -- the tenant whose token started it
);
CREATE INDEX IF NOT EXISTS sessions_by_status ON sessions (status, seq);
CREATE TABLE IF NOT EXISTS cells (
    session_id TEXT NOT NULL,
    n          INTEGER NOT NULL,
    result     TEXT NOT NULL,             -- CellResult JSON
    code       TEXT,                      -- the cell's code (NULL: recorded without it)
    PRIMARY KEY (session_id, n)
);
"""
# A file written before tenants: its sessions belong to the built-in admin tenant;
# before cells kept their code: those cells have none.
COLUMNS = (("sessions", "tenant", "TEXT NOT NULL DEFAULT 'admin'"), ("cells", "code", "TEXT"))
INDEXES = "CREATE INDEX IF NOT EXISTS sessions_by_tenant ON sessions (tenant, seq);"


class SessionStore(SqliteFile):
    """`records.SessionRegistry` in one SQLite file of one daemon."""

    def __init__(self, path: Path, *, node: str) -> None:
        super().__init__(
            path, what="the session store", schema=SCHEMA, columns=COLUMNS, after=INDEXES
        )
        self.node = node

    def put(self, info: SessionInfo) -> None:
        """Record a session's state, as held by this node; an ended session stays as it ended."""
        with self._lock:
            self._db().execute(
                "INSERT INTO sessions (id, node, status, info, tenant) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET node = excluded.node, status = excluded.status, "
                "info = excluded.info WHERE sessions.status IN ('starting', 'idle', 'busy', 'paused')",
                (info.id, self.node, info.status.value, info.model_dump_json(), info.tenant),
            )

    def get(self, session_id: str) -> SessionInfo | None:
        with self._lock:
            row = (
                self._db()
                .execute("SELECT info, tenant FROM sessions WHERE id = ?", (session_id,))
                .fetchone()
            )
        return None if row is None else session_of_row(row)

    def recent(self, *, tenant: str | None = None, limit: int = 100) -> list[SessionInfo]:
        """Live first, then the newest (of ``tenant``; None: any)."""
        with self._lock:
            rows = (
                self._db()
                .execute(
                    "SELECT info, tenant FROM sessions WHERE (:tenant IS NULL OR tenant = :tenant) "
                    "ORDER BY status IN ('starting', 'idle', 'busy') DESC, seq DESC LIMIT :limit",
                    {"tenant": tenant, "limit": limit},
                )
                .fetchall()
            )
        return [session_of_row(row) for row in rows]

    def lose_live(self, reason: str) -> list[str]:
        """Mark every live session ``lost``: at a start, the process that held them is gone
        (this store belongs to one daemon; a shared one asks which nodes died)."""
        with self._lock:
            db = self._db()
            rows = db.execute(
                "SELECT info FROM sessions WHERE status IN ('starting', 'idle', 'busy')"
            ).fetchall()
            lost = []
            for (text,) in rows:
                info = SessionInfo.model_validate_json(text)
                info = info.model_copy(
                    update={"status": SessionStatus.LOST, "error": reason, "idle_expires_at": None}
                )
                db.execute(
                    "UPDATE sessions SET status = 'lost', info = ? WHERE id = ?",
                    (info.model_dump_json(), info.id),
                )
                lost.append(info.id)
        return lost

    def put_cell(self, result: CellResult, code: str | None = None) -> None:
        with self._lock:
            self._db().execute(
                "INSERT OR REPLACE INTO cells (session_id, n, result, code) VALUES (?, ?, ?, ?)",
                (result.session_id, result.execution_count, result.model_dump_json(), code),
            )

    def cell_code(self, session_id: str, n: int) -> str | None:
        with self._lock:
            row = (
                self._db()
                .execute("SELECT code FROM cells WHERE session_id = ? AND n = ?", (session_id, n))
                .fetchone()
            )
        return None if row is None else row[0]

    def get_cell(self, session_id: str, n: int) -> CellResult | None:
        with self._lock:
            row = (
                self._db()
                .execute("SELECT result FROM cells WHERE session_id = ? AND n = ?", (session_id, n))
                .fetchone()
            )
        return None if row is None else CellResult.model_validate_json(row[0])

    def delete_before(self, keep: int) -> int:
        """Keep the newest ``keep`` ended sessions (and their cells); return how many went."""
        with self._lock:
            db = self._db()
            doomed = [
                row[0]
                for row in db.execute(
                    "SELECT id FROM sessions WHERE status NOT IN ('starting', 'idle', 'busy', 'paused') "
                    "ORDER BY seq DESC LIMIT -1 OFFSET ?",
                    (keep,),
                ).fetchall()
            ]
            db.executemany("DELETE FROM cells WHERE session_id = ?", [(d,) for d in doomed])
            db.executemany("DELETE FROM sessions WHERE id = ?", [(d,) for d in doomed])
        return len(doomed)


def session_of_row(row: tuple[str, str]) -> SessionInfo:
    """A session of an (info JSON, tenant) row: the column names the owner (a row older
    than tenants has JSON without one)."""
    info = SessionInfo.model_validate_json(row[0])
    return info if info.tenant == row[1] else info.model_copy(update={"tenant": row[1]})
