"""A cluster API node's runs: `node.RunDispatcher` over the shared PostgreSQL.

    dispatcher = ClusterDispatcher(settings, store, follower, metrics, tenants, workers)
    dispatcher.open(); handle = dispatcher.submit(request, limits, tenant="team-a")

Admission is bounded cluster-wide (`PgRunStore.admit`, with the tenant's quotas);
the runs execute on any worker and are followed here (`Follower`); a cancel is told
to the worker running it by NOTIFY. A database that cannot be reached is `NotReady`.
"""

from __future__ import annotations

import uuid

import psycopg
from loguru import logger

from ai_data_agent.api_models import ActiveStatus
from ai_data_agent.errors import NotReady, NoWorker, QueueFull
from ai_data_agent.models import Limits, RunRequest
from ai_data_agent.service.cluster.follower import Follower
from ai_data_agent.service.cluster.pg_store import PgRunStore
from ai_data_agent.service.cluster.pg_workers import WorkerRegistry
from ai_data_agent.service.handles import RunHandle
from ai_data_agent.service.metrics import ServiceMetrics
from ai_data_agent.service.node import REASON_CANCELLED_QUEUED
from ai_data_agent.service.quotas import quotas_of
from ai_data_agent.service.records import TenantRecords
from ai_data_agent.settings import Settings
from ai_data_agent.tenant_models import ADMIN_TENANT

__all__ = ["ClusterDispatcher", "unavailable"]


def unavailable(exc: psycopg.Error) -> NotReady:
    return NotReady(f"the database cannot be reached: {exc}".strip())


class ClusterDispatcher:
    """`node.RunDispatcher` over the database: admission bounded cluster-wide, the
    handles of runs that execute on any worker (`Follower`), cancels told by NOTIFY."""

    def __init__(
        self,
        settings: Settings,
        store: PgRunStore,
        follower: Follower,
        metrics: ServiceMetrics,
        tenants: TenantRecords,
        workers: WorkerRegistry,
    ) -> None:
        self._settings = settings
        self._store = store
        self._tenants = tenants
        self._follower = follower
        self._metrics = metrics
        self._workers = workers
        self._accepting = False

    @property
    def accepting(self) -> bool:
        return self._accepting

    @property
    def in_flight(self) -> int:
        """Runs this node follows (its clients may wait on them): a drain keeps answering
        until they end, wherever they run."""
        return self._follower.following

    def open(self) -> None:
        self._accepting = True

    def close(self) -> None:
        self._accepting = False

    def submit(
        self, request: RunRequest, limits: Limits, *, tenant: str = ADMIN_TENANT
    ) -> RunHandle:
        """Admit ``request`` (``tenant``'s) cluster-wide and follow it.

        Raises:
            QueueFull: the cluster is full; nothing was recorded.
            QuotaExceeded: the tenant holds as many runs as its quotas let it.
            NotReady: shutting down, or the database cannot be reached.
        """
        if not self._accepting:
            raise NotReady("the API node is starting or shutting down; it takes no new runs")
        quotas = quotas_of(self._tenants, tenant)
        run_id = uuid.uuid4().hex
        s = self._settings
        try:
            self._store.admit(
                run_id,
                request,
                limits,
                max_queued=s.max_queued_runs,
                lease_s=s.lease_timeout_s,
                tenant=tenant,
                quotas=quotas,
            )
        except psycopg.Error as exc:
            logger.error("cannot admit a run: {}", exc)
            raise unavailable(exc) from exc
        except QueueFull as exc:  # QuotaExceeded too
            self._metrics.observe_rejected(exc, tenant)
            raise
        logger.bind(run_id=run_id).debug("run admitted")
        return self._follower.track(run_id)

    def find(self, run_id: str) -> RunHandle | None:
        try:
            return self._follower.follow(run_id)
        except psycopg.Error as exc:
            raise unavailable(exc) from exc

    def cancel(self, run_id: str) -> RunHandle | None:
        """Cancel a queued run at once, or tell the worker running it (NOTIFY)."""
        try:
            handle = self._follower.follow(run_id)
            if handle is None:
                return None
            outcome = self._store.request_cancel(run_id, REASON_CANCELLED_QUEUED)
        except psycopg.Error as exc:
            raise unavailable(exc) from exc
        logger.bind(run_id=run_id).info("cancel requested: {}", outcome or "already ended")
        self._follower.notify(run_id)
        return handle

    def check_execution(self, run_id: str) -> None:
        """Raises `NoWorker` while ``run_id`` is queued and no worker holds a live lease."""
        try:
            if self._workers.live(lease_s=self._settings.lease_timeout_s):
                return
            record = self._store.get(run_id)
        except psycopg.Error as exc:
            raise unavailable(exc) from exc
        if record is not None and record.status == ActiveStatus.QUEUED:
            raise NoWorker(
                f"no live worker in the cluster: run {run_id} stays queued and starts when a "
                f"worker does; follow it at /v1/runs/{run_id}",
                run_id=run_id,
            )
