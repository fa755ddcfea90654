"""The audit log in SQLite, beside the run records: `records.AuditRecords`.

    store = AuditStore(settings.data_dir / "audit.sqlite3")
    store.open()
    store.append([entry, entry])          # one transaction, in the file when it returns
    store.query(AuditQuery(tenant="team-a", limit=50))

WAL mode: an appended batch is in the file when `append` returns, so it
survives a crash or ``kill -9`` of the daemon. With ``fsync`` (the setting
``audit_fsync``) each batch is also synced to the disk (``synchronous=FULL``)
and survives power loss, at the price of one disk sync per batch: on a small
droplet that sync costs more than the rest of a request. The log's writer
(`audit.AuditLog`) batches concurrent entries into one `append`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ai_data_agent.service.records import AuditQuery
from ai_data_agent.service.sqlite import SqliteFile
from ai_data_agent.tenant_models import AuditEntry

__all__ = ["AUDIT_FILENAME", "AuditStore", "entry_of_row", "row_of_entry"]

AUDIT_FILENAME = "audit.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at        REAL NOT NULL,              -- unix seconds
    tenant    TEXT,
    token     TEXT,                       -- the token's name, never its secret
    action    TEXT NOT NULL,
    object_id TEXT,
    status    INTEGER NOT NULL,
    code      TEXT,
    client    TEXT
);
CREATE INDEX IF NOT EXISTS audit_by_tenant ON audit (tenant, seq);
CREATE INDEX IF NOT EXISTS audit_by_at ON audit (at);
"""
ENTRY_COLUMNS = "seq, at, tenant, token, action, object_id, status, code, client"


def row_of_entry(entry: AuditEntry) -> tuple[Any, ...]:
    """The inserted columns (all but ``seq``) of an entry, for both stores."""
    return (
        entry.at.timestamp(),
        entry.tenant,
        entry.token,
        entry.action,
        entry.object_id,
        entry.status,
        entry.code,
        entry.client,
    )


def entry_of_row(row: tuple[Any, ...]) -> AuditEntry:
    """An entry of a row of `ENTRY_COLUMNS`, for both stores."""
    seq, at, tenant, token, action, object_id, status, code, client = row
    return AuditEntry(
        seq=seq,
        at=datetime.fromtimestamp(at, UTC),
        tenant=tenant,
        token=token,
        action=action,
        object_id=object_id,
        status=status,
        code=code,
        client=client,
    )


def query_params(query: AuditQuery) -> dict[str, Any]:
    """The named parameters of the query, for both stores: an action ending in a dot
    (``egress.``) is a family, matched as a prefix."""
    family = query.action is not None and query.action.endswith(".")
    return {
        "tenant": query.tenant,
        "action": None if family else query.action,
        "family": query.action if family else None,
        "since": query.since,
        "until": query.until,
        "before": query.before,
        "limit": query.limit,
    }


class AuditStore(SqliteFile):
    """See the module docstring."""

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        sync = "synchronous=FULL" if fsync else "synchronous=NORMAL"
        super().__init__(path, what="the audit log", schema=SCHEMA, pragmas=(sync,))

    def append(self, entries: list[AuditEntry]) -> None:
        if not entries:
            return
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT INTO audit (at, tenant, token, action, object_id, status, code, "
                    "client) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [row_of_entry(entry) for entry in entries],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def query(self, query: AuditQuery) -> list[AuditEntry]:
        with self._lock:
            rows = (
                self._db()
                .execute(
                    f"SELECT {ENTRY_COLUMNS} FROM audit "  # noqa: S608 (a constant)
                    "WHERE (:tenant IS NULL OR tenant = :tenant) "
                    "AND (:action IS NULL OR action = :action) "
                    "AND (:family IS NULL OR substr(action, 1, length(:family)) = :family) "
                    "AND (:since IS NULL OR at >= :since) AND (:until IS NULL OR at < :until) "
                    "AND (:before IS NULL OR seq < :before) ORDER BY seq DESC LIMIT :limit",
                    query_params(query),
                )
                .fetchall()
            )
        return [entry_of_row(row) for row in rows]

    def delete_before(self, cutoff: float) -> int:
        with self._lock:
            return self._db().execute("DELETE FROM audit WHERE at < ?", (cutoff,)).rowcount
