"""Tenants' CPU charges in the shared PostgreSQL: `cpu_usage.CpuRecords` for a cluster.

    ledger = PgCpuStore(db)           # the node opens and migrates the database (migration 9)
    ledger.charge("team-a", 1.62, at=time.time(), object_id=run_id)   # a worker, as a run ends
    ledger.charges("team-a", since=time.time() - 3600)                # an API node, at admission

Workers charge the runs and cells they execute (an insert: they may not
delete); every API node reads the same rows, so a tenant's use on any worker
counts at every door, and now and then removes the rows the hour has left.
"""

from __future__ import annotations

import time

from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.cpu_usage import CPU_WINDOW_S

__all__ = ["PgCpuStore"]

PRUNE_EVERY_S = 300.0


class PgCpuStore:
    """See the module docstring. The database is opened (and migrated) by the node."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pruned_at = 0.0  # monotonic; rows are pruned by the readers (API nodes)

    def open(self) -> None:
        """The node opens the database."""

    def close(self) -> None:
        """The node closes the database."""

    def charge(self, tenant: str, seconds: float, *, at: float, object_id: str) -> None:
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO cpu_charges (tenant, at, seconds, object_id) VALUES (%s, %s, %s, %s)",
                (tenant, at, seconds, object_id),
            )

    def charges(self, tenant: str, *, since: float) -> list[tuple[float, float]]:
        with self.db.connection() as conn:
            if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
                conn.execute("DELETE FROM cpu_charges WHERE at < %s", (since - CPU_WINDOW_S,))
                self._pruned_at = time.monotonic()
            rows = conn.execute(
                "SELECT at, seconds FROM cpu_charges WHERE tenant = %s AND at > %s",
                (tenant, since),
            ).fetchall()
        return [(float(at), float(seconds)) for at, seconds in rows]
