"""Checkpoints' records and their key in the cluster's PostgreSQL (`checkpoint_records`).

    store = PgCheckpointStore(db, prunes=True)        # an API node: reads, prunes, expires
    store = PgCheckpointStore(db)                     # a worker: takes checkpoints, reads
    signer = Signer(lambda: cluster_key(db, create=True))   # one key for every node

A checkpoint is taken on the worker that holds the session and may be
resumed on any other, so the records and the key that signs them are in the
database every node shares; the blobs are in the cluster's blob store. A
worker's role may not delete: pruning and expiry are an API node's
housekeeping (``prunes``), as for sessions.
"""

from __future__ import annotations

import json
import secrets

from ai_data_agent.errors import ConfigurationError
from ai_data_agent.service.checkpoint_records import CheckpointRecord, merged_blobs
from ai_data_agent.service.cluster.db import Database

__all__ = ["KEY_NAME", "PgCheckpointStore", "cluster_key"]

KEY_NAME = "checkpoint_key"


def cluster_key(db: Database, *, create: bool = False) -> bytes:
    """The cluster's checkpoint key, from the ``meta`` table (an API node makes it).

    Raises:
        ConfigurationError: there is none yet (start an API node of this version first).
    """
    with db.connection() as conn:
        if create:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
                (KEY_NAME, secrets.token_hex(32)),
            )
        row = conn.execute("SELECT value FROM meta WHERE key = %s", (KEY_NAME,)).fetchone()
    if row is None:
        raise ConfigurationError("the cluster has no checkpoint key yet: start an API node first")
    return bytes.fromhex(str(row[0]))


class PgCheckpointStore:
    def __init__(self, db: Database, *, prunes: bool = False) -> None:
        self.db = db
        self._prunes = prunes

    def open(self) -> None:
        """The node opens the database (pool and schema)."""

    def close(self) -> None:
        """The node closes the database."""

    def add(self, record: CheckpointRecord) -> None:
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO checkpoints (session_id, seq, tenant, record, blobs) "
                "VALUES (%s, %s, %s, %s, %s)",
                (
                    record.session_id,
                    record.seq,
                    record.tenant,
                    record.model_dump_json(),
                    json.dumps(record.blobs()),
                ),
            )

    def _records(self, where: str, args: tuple[object, ...]) -> list[CheckpointRecord]:
        with self.db.connection() as conn:
            rows = conn.execute(
                f"SELECT record FROM checkpoints WHERE {where} ORDER BY seq DESC",  # noqa: S608 (constants)
                args,
            ).fetchall()
        return [CheckpointRecord.model_validate_json(row[0]) for row in rows]

    def get(self, session_id: str, seq: int, *, tenant: str | None) -> CheckpointRecord | None:
        found = self._records(
            "session_id = %s AND seq = %s AND (%s::text IS NULL OR tenant = %s)",
            (session_id, seq, tenant, tenant),
        )
        return found[0] if found else None

    def latest(self, session_id: str, *, tenant: str | None) -> CheckpointRecord | None:
        found = self.history(session_id, tenant=tenant)
        return found[0] if found else None

    def history(self, session_id: str, *, tenant: str | None) -> list[CheckpointRecord]:
        return self._records(
            "session_id = %s AND (%s::text IS NULL OR tenant = %s)", (session_id, tenant, tenant)
        )

    def next_seq(self, session_id: str) -> int:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM checkpoints WHERE session_id = %s",
                (session_id,),
            ).fetchone()
        return int(row[0] if row else 0) + 1

    def prune(self, session_id: str, *, keep: int) -> int:
        """Only where ``prunes`` (an API node's housekeeping keeps the newest of each)."""
        if not self._prunes:
            return 0
        with self.db.connection() as conn:
            cursor = conn.execute(
                "DELETE FROM checkpoints WHERE session_id = %s AND seq NOT IN ("
                "SELECT seq FROM checkpoints WHERE session_id = %s ORDER BY seq DESC LIMIT %s)",
                (session_id, session_id, keep),
            )
        return cursor.rowcount

    def prune_all(self, *, keep: int) -> int:
        """All but the newest ``keep`` of every session (an API node's housekeeping)."""
        if not self._prunes:
            return 0
        with self.db.connection() as conn:
            cursor = conn.execute(
                "DELETE FROM checkpoints c USING (SELECT session_id, seq, row_number() OVER "
                "(PARTITION BY session_id ORDER BY seq DESC) AS n FROM checkpoints) r "
                "WHERE c.session_id = r.session_id AND c.seq = r.seq AND r.n > %s",
                (keep,),
            )
        return cursor.rowcount

    def delete_session(self, session_id: str) -> int:
        if not self._prunes:
            return 0
        with self.db.connection() as conn:
            cursor = conn.execute("DELETE FROM checkpoints WHERE session_id = %s", (session_id,))
        return cursor.rowcount

    def with_checkpoints(self, session_ids: list[str]) -> set[str]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT DISTINCT session_id FROM checkpoints WHERE session_id = ANY(%s)",
                (session_ids,),
            ).fetchall()
        return {str(row[0]) for row in rows}

    def _blob_sizes(self, tenant: str | None) -> dict[str, int]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT blobs FROM checkpoints WHERE (%s::text IS NULL OR tenant = %s)",
                (tenant, tenant),
            ).fetchall()
        return merged_blobs(row[0] for row in rows)

    def digests(self) -> set[str]:
        return set(self._blob_sizes(None))

    def usage(self, tenant: str) -> int:
        return sum(self._blob_sizes(tenant).values())
