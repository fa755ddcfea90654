"""Tenants' CPU time: charged when a run or cell ends, checked against ``cpu_seconds_per_hour``.

    ledger: CpuRecords = CpuStore(settings.data_dir / TENANTS_FILENAME)   # or PgCpuStore(db)
    account = CpuAccount(ledger, metrics, tenants)
    account.admit("team-a", quotas)                  # QuotaExceeded at or over its hour's quota
    account.charge("team-a", 1.62, object_id=run_id) # its run used 1.62 CPU seconds

The figures are the containers' own cgroup counters, read on the host
(`executor.docker.cpu`): a run's whole use (a pooled sandbox's warm-up
excluded), a cell's use since the cell before it. Each charge is a row with
its time, so the quota's hour slides (`check_cpu`); rows older than the
window are pruned as new ones come. Runs are admitted by `runs.admit`,
sessions and cells by `ownership.TenantSessions`, on either kind of node. A charge that cannot be written is
logged, never raised: the run or cell it belongs to has already ended.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from loguru import logger

from ai_data_agent.errors import NotReady, QuotaExceeded
from ai_data_agent.service.metrics import ServiceMetrics
from ai_data_agent.service.sqlite import SqliteFile
from ai_data_agent.tenant_models import Quotas

__all__ = ["CPU_WINDOW_S", "CpuAccount", "CpuRecords", "CpuStore", "check_cpu", "cpu_used"]

CPU_WINDOW_S = 3600.0  # cpu_seconds_per_hour: the hour slides

SCHEMA = """
CREATE TABLE IF NOT EXISTS cpu_charges (
    tenant    TEXT NOT NULL,
    at        REAL NOT NULL,                  -- unix seconds: when the run or cell ended
    seconds   REAL NOT NULL,
    object_id TEXT NOT NULL                   -- the run's or the session's id
);
CREATE INDEX IF NOT EXISTS cpu_charges_by_tenant ON cpu_charges (tenant, at);
"""


def cpu_used(charges: Iterable[tuple[float, float]], *, now: float) -> float:
    """The CPU seconds of ``charges`` ((unix time, seconds) each) in the hour before ``now``."""
    return sum(seconds for at, seconds in charges if at > now - CPU_WINDOW_S)


def check_cpu(
    quotas: Quotas, tenant: str, charges: Iterable[tuple[float, float]], *, now: float
) -> None:
    """Raise when ``tenant``'s ``charges`` in the hour before ``now`` reach its
    ``cpu_seconds_per_hour``.

    Raises:
        QuotaExceeded: at or over the limit; ``retry_after`` is when the oldest charges
            have aged out far enough for the rest to be under it (at least 1 s).
    """
    limit = quotas.cpu_seconds_per_hour
    if limit is None:
        return
    recent = sorted((at, s) for at, s in charges if at > now - CPU_WINDOW_S)
    used = sum(seconds for _, seconds in recent)
    if used < limit:
        return
    wait, left = CPU_WINDOW_S, used  # a limit of 0 is never met: an hour is the answer
    for at, seconds in recent:
        left -= seconds
        if left < limit:
            wait = at + CPU_WINDOW_S - now
            break
    raise QuotaExceeded(
        f"tenant {tenant!r} used {used:.3f} CPU seconds in the last hour, its quota "
        f"cpu_seconds_per_hour = {limit:g}; retry when older use ages out",
        quota="cpu_seconds_per_hour",
        limit=limit,
        used=round(used, 3),
        retry_after=max(math.ceil(wait), 1),
    )


class CpuRecords(Protocol):
    """Durable CPU charges (SQLite on one node, PostgreSQL in a cluster). Blocking."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def charge(self, tenant: str, seconds: float, *, at: float, object_id: str) -> None:
        """Record one charge, durably. Rows the window has left may go at the store's pace."""

    def charges(self, tenant: str, *, since: float) -> list[tuple[float, float]]:
        """``tenant``'s charges after ``since``: (unix time, seconds) each."""


class CpuStore(SqliteFile):
    """`CpuRecords` in SQLite (the tenant store's file: its own table)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, what="the CPU ledger", schema=SCHEMA, pragmas=("synchronous=FULL",))

    def charge(self, tenant: str, seconds: float, *, at: float, object_id: str) -> None:
        with self._lock:
            db = self._db()
            db.execute("DELETE FROM cpu_charges WHERE at < ?", (at - 2 * CPU_WINDOW_S,))
            db.execute(
                "INSERT INTO cpu_charges (tenant, at, seconds, object_id) VALUES (?, ?, ?, ?)",
                (tenant, at, seconds, object_id),
            )

    def charges(self, tenant: str, *, since: float) -> list[tuple[float, float]]:
        with self._lock:
            rows = (
                self._db()
                .execute(
                    "SELECT at, seconds FROM cpu_charges WHERE tenant = ? AND at > ?",
                    (tenant, since),
                )
                .fetchall()
            )
        return [(float(at), float(seconds)) for at, seconds in rows]


class CpuAccount:
    """Charges and admits tenants' CPU time over ``ledger`` (see the module docstring)."""

    def __init__(
        self,
        ledger: CpuRecords,
        metrics: ServiceMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self._metrics = metrics
        self._clock = clock

    def admit(self, tenant: str, quotas: Quotas, *, run: bool = False) -> None:
        """Raise when ``tenant`` (with ``quotas``) is at or over its ``cpu_seconds_per_hour``
        now; a refusal is counted (as a refused run too, with ``run``).

        Raises:
            QuotaExceeded: it is (``retry_after``: when enough use has aged out).
            NotReady: the ledger cannot be read.
        """
        if quotas.cpu_seconds_per_hour is None:
            return
        now = self._clock()
        try:
            charges = self.ledger.charges(tenant, since=now - CPU_WINDOW_S)
        except Exception as exc:
            logger.error("cannot read the CPU ledger: {}", exc)
            raise NotReady("the node cannot read its CPU ledger") from exc
        try:
            check_cpu(quotas, tenant, charges, now=now)
        except QuotaExceeded as exc:
            if run:
                self._metrics.observe_rejected(exc, tenant)
            else:
                self._metrics.observe_quota(exc, tenant)
            raise

    def charge(self, tenant: str, seconds: float | None, *, object_id: str) -> None:
        """Charge ``seconds`` (None: not measured, nothing to charge) to ``tenant`` now, in
        the ledger and the metrics. Never raises."""
        if seconds is None or seconds <= 0:
            return
        self._metrics.observe_cpu(tenant, seconds)
        try:
            self.ledger.charge(tenant, seconds, at=self._clock(), object_id=object_id)
        except Exception as exc:
            logger.bind(run_id=object_id).error("cannot charge {:.3f} CPU s: {}", seconds, exc)
