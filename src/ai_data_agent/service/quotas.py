"""A tenant's quotas at admission: what it may hold, checked against what it holds now.

    quotas = quotas_of(node.tenants, "team-a")      # its stored `Quotas` (None: unlimited)
    check_runs(quotas, "team-a", running=2, queued=1, slots=4)   # or QuotaExceeded
    check_sessions(quotas, "team-a", live=2)                     # or QuotaExceeded

One rule for both kinds of node: one node counts what its dispatcher and
session manager hold, a cluster counts its tables in the admitting transaction;
both call these checks, so a refusal reads the same. ``concurrent_runs`` caps
how many of a tenant's runs run at once (the rest wait in the queue, which
skips the tenant while it is at its cap); ``queued_runs`` caps how many wait
beyond that: a tenant holds at most ``concurrent_runs + queued_runs`` runs
(``concurrent_runs`` unset: the host's slots), and with ``queued_runs`` unset
only the host's queue bounds it. ``concurrent_sessions`` caps its live
sessions. Counts drop the moment a run ends or a session closes, so the next
admission sees them. ``cpu_seconds_per_hour`` is a charge, not a count: it is
checked at the doors (`cpu_usage.CpuAccount`). ``storage_bytes`` caps what a
tenant's datasets and checkpoints hold together (`check_storage`, as a checkpoint
is stored).
"""

from __future__ import annotations

from loguru import logger

from ai_data_agent.errors import NotReady, QuotaExceeded
from ai_data_agent.service.metrics import ServiceMetrics
from ai_data_agent.service.node import RUN_RETRY_AFTER_S, SESSION_RETRY_AFTER_S
from ai_data_agent.service.records import TenantRecords
from ai_data_agent.tenant_models import Quotas

__all__ = [
    "admit_session",
    "check_runs",
    "check_sessions",
    "check_storage",
    "quotas_of",
    "run_cap",
]


def quotas_of(tenants: TenantRecords | None, tenant: str) -> Quotas:
    """``tenant``'s quotas as stored now (none stored, or no store: unlimited).

    Raises:
        NotReady: the tenant store cannot be read.
    """
    if tenants is None:
        return Quotas()
    try:
        found = tenants.get_tenant(tenant)
    except Exception as exc:
        logger.error("cannot read the tenant store: {}", exc)
        raise NotReady("the daemon cannot read its tenant store") from exc
    return Quotas() if found is None else found.quotas


def run_cap(quotas: Quotas, slots: int | None) -> int | None:
    """How many of the tenant's runs may run at once: its ``concurrent_runs``, within the
    host's ``slots`` (None: unknown); None when neither bounds it."""
    caps = [c for c in (quotas.concurrent_runs, slots) if c is not None]
    return min(caps) if caps else None


def check_runs(
    quotas: Quotas, tenant: str, *, running: int, queued: int, slots: int | None
) -> None:
    """Raise unless ``tenant`` (holding ``running`` and ``queued`` runs) may queue one more.

    Raises:
        QuotaExceeded: it holds ``concurrent_runs + queued_runs`` (``concurrent_runs`` when
            ``queued_runs`` is 0, else ``queued_runs``, is named).
    """
    if quotas.queued_runs is None:
        return
    cap = run_cap(quotas, slots)
    held = running + queued
    if cap is None:
        if queued < quotas.queued_runs:
            return
    elif held < cap + quotas.queued_runs:
        return
    if quotas.queued_runs == 0 and quotas.concurrent_runs is not None:
        raise _exceeded(tenant, "concurrent_runs", quotas.concurrent_runs, held, RUN_RETRY_AFTER_S)
    raise _exceeded(tenant, "queued_runs", quotas.queued_runs, queued, RUN_RETRY_AFTER_S)


def check_sessions(quotas: Quotas, tenant: str, *, live: int) -> None:
    """Raise unless ``tenant`` (with ``live`` sessions, starting ones included) may start
    one more.

    Raises:
        QuotaExceeded: it holds ``concurrent_sessions``.
    """
    limit = quotas.concurrent_sessions
    if limit is not None and live >= limit:
        raise _exceeded(tenant, "concurrent_sessions", limit, live, SESSION_RETRY_AFTER_S)


def check_storage(limit: int | None, tenant: str, *, used: int, adding: int) -> None:
    """Raise unless ``tenant`` (holding ``used`` bytes) may store ``adding`` more within
    its ``storage_bytes`` quota ``limit`` (None: none).

    Raises:
        QuotaExceeded: it would hold more than ``limit``; no retry helps until something
            of it is deleted, so no ``retry_after``.
    """
    if limit is None or used + adding <= limit:
        return
    raise QuotaExceeded(
        f"tenant {tenant!r} would hold {used + adding} bytes, over its quota storage_bytes = "
        f"{limit} ({used} in use, {adding} more asked); delete datasets or close sessions",
        quota="storage_bytes",
        limit=limit,
        used=used,
    )


def admit_session(quotas: Quotas, tenant: str, *, live: int, metrics: ServiceMetrics) -> None:
    """`check_sessions`, a refusal counted in ``metrics``."""
    try:
        check_sessions(quotas, tenant, live=live)
    except QuotaExceeded as exc:
        metrics.observe_quota(exc, tenant)
        raise


def _exceeded(tenant: str, quota: str, limit: int, used: int, retry_after: float) -> QuotaExceeded:
    return QuotaExceeded(
        f"tenant {tenant!r} is at its quota {quota} = {limit} ({used} in use); retry when one ends",
        quota=quota,
        limit=limit,
        used=used,
        retry_after=retry_after,
    )
