"""Checkpoints' records in the daemon's SQLite (`checkpoint_records.CheckpointRecords`).

    store = CheckpointStore(settings.data_dir / CHECKPOINTS_FILENAME)
    store.open()
    store.add(signer.sign(record))
    store.latest(session_id, tenant="admin")

One row per checkpoint, the record as JSON beside the columns it is looked
up by; blobs' sizes are summed once per distinct digest for a tenant's usage.
"""

from __future__ import annotations

import json
from pathlib import Path

from ai_data_agent.service.checkpoint_records import CheckpointRecord, merged_blobs
from ai_data_agent.service.sqlite import SqliteFile

__all__ = ["CHECKPOINTS_FILENAME", "CheckpointStore"]

CHECKPOINTS_FILENAME = "checkpoints.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    session_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    tenant     TEXT NOT NULL,
    record     TEXT NOT NULL,          -- CheckpointRecord JSON, its MAC included
    blobs      TEXT NOT NULL,          -- {digest: size} of the blobs it names
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX IF NOT EXISTS checkpoints_by_tenant ON checkpoints (tenant);
"""
_TENANT = "(? IS NULL OR tenant = ?)"


class CheckpointStore(SqliteFile):
    def __init__(self, path: Path) -> None:
        # NORMAL: a record survives the daemon's death, as its blobs do (neither is
        # fsynced; a blob a crash of the machine cut short is refused at resume).
        super().__init__(
            path, what="the checkpoint store", schema=SCHEMA, pragmas=("synchronous=NORMAL",)
        )

    def add(self, record: CheckpointRecord) -> None:
        with self._lock:
            self._db().execute(
                "INSERT INTO checkpoints (session_id, seq, tenant, record, blobs) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    record.session_id,
                    record.seq,
                    record.tenant,
                    record.model_dump_json(),
                    json.dumps(record.blobs()),
                ),
            )

    def _records(self, where: str, args: tuple[object, ...]) -> list[CheckpointRecord]:
        with self._lock:
            rows = (
                self._db()
                .execute(f"SELECT record FROM checkpoints WHERE {where} ORDER BY seq DESC", args)  # noqa: S608 (constants)
                .fetchall()
            )
        return [CheckpointRecord.model_validate_json(row[0]) for row in rows]

    def get(self, session_id: str, seq: int, *, tenant: str | None) -> CheckpointRecord | None:
        found = self._records(
            f"session_id = ? AND seq = ? AND {_TENANT}", (session_id, seq, tenant, tenant)
        )
        return found[0] if found else None

    def latest(self, session_id: str, *, tenant: str | None) -> CheckpointRecord | None:
        found = self.history(session_id, tenant=tenant)
        return found[0] if found else None

    def history(self, session_id: str, *, tenant: str | None) -> list[CheckpointRecord]:
        return self._records(f"session_id = ? AND {_TENANT}", (session_id, tenant, tenant))

    def next_seq(self, session_id: str) -> int:
        with self._lock:
            row = (
                self._db()
                .execute("SELECT MAX(seq) FROM checkpoints WHERE session_id = ?", (session_id,))
                .fetchone()
            )
        return int(row[0] or 0) + 1

    def prune(self, session_id: str, *, keep: int) -> int:
        with self._lock:
            cursor = self._db().execute(
                "DELETE FROM checkpoints WHERE session_id = ? AND seq NOT IN ("
                "SELECT seq FROM checkpoints WHERE session_id = ? ORDER BY seq DESC LIMIT ?)",
                (session_id, session_id, keep),
            )
        return cursor.rowcount

    def delete_session(self, session_id: str) -> int:
        with self._lock:
            cursor = self._db().execute(
                "DELETE FROM checkpoints WHERE session_id = ?", (session_id,)
            )
        return cursor.rowcount

    def with_checkpoints(self, session_ids: list[str]) -> set[str]:
        if not session_ids:
            return set()
        marks = ",".join("?" * len(session_ids))
        with self._lock:
            rows = (
                self._db()
                .execute(
                    f"SELECT DISTINCT session_id FROM checkpoints WHERE session_id IN ({marks})",  # noqa: S608
                    session_ids,
                )
                .fetchall()
            )
        return {row[0] for row in rows}

    def _blob_sizes(self, tenant: str | None) -> dict[str, int]:
        with self._lock:
            rows = (
                self._db()
                .execute(f"SELECT blobs FROM checkpoints WHERE {_TENANT}", (tenant, tenant))  # noqa: S608
                .fetchall()
            )
        return merged_blobs(row[0] for row in rows)

    def digests(self) -> set[str]:
        return set(self._blob_sizes(None))

    def usage(self, tenant: str) -> int:
        return sum(self._blob_sizes(tenant).values())
