"""A worker node's parts wired together: its engine, its database pool, runs and sessions.

    node = WorkerNode(settings, Executor(settings), ServiceMetrics())
    node.start()            # schema check, registration, engine sweep, pool, prewarm, work
    node.probes()           # readiness: docker, image, database, API nodes
    node.blobs              # the cluster's blobs (`HttpBlobStore`, through the API nodes)
    node.stop()

Used by ``ai-data-agent worker`` (with `worker_app` for /healthz, /readyz and
/metrics) and by ``serve --with-worker`` inside an API node, which passes its
own blob store (the shared directory). The worker takes runs and session calls
only from the database; it listens on no port for work, and reaches the
cluster's blobs at the URLs the API nodes advertise.
"""

from __future__ import annotations

from collections.abc import Callable

from loguru import logger

from ai_data_agent.checks import Check
from ai_data_agent.errors import AiDataAgentError
from ai_data_agent.service.audit import AuditLog
from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.cluster.pg_datasets import PgDatasetStore
from ai_data_agent.service.cluster.pg_nodes import ApiNodes
from ai_data_agent.service.cluster.pg_tenants import PgAuditStore, PgTenantStore
from ai_data_agent.service.cluster.worker import Worker
from ai_data_agent.service.cluster.worker_sessions import SessionHost
from ai_data_agent.service.datasets.service import DatasetService
from ai_data_agent.service.egress_audit import EgressAudit
from ai_data_agent.service.health import engine_probes, warm_pool_check, writable_probe
from ai_data_agent.service.metrics import ServiceMetrics
from ai_data_agent.service.node import RunExecutor
from ai_data_agent.service.prewarm import Prewarmer
from ai_data_agent.settings import Settings
from ai_data_agent.storage import BlobStore
from ai_data_agent.storage.remote import HttpBlobStore

__all__ = ["BLOB_CACHE", "WorkerNode", "remote_blobs"]

BLOB_CACHE = "blob-cache"  # under data_dir: a worker's copies of the cluster's blobs


def remote_blobs(settings: Settings, db: Database) -> HttpBlobStore:
    """A worker's view of the cluster's blobs: through the live API nodes, cached locally."""
    return HttpBlobStore(
        settings.data_dir / BLOB_CACHE,
        ApiNodes(db, lease_s=settings.lease_timeout_s),
        cache_max_bytes=settings.blob_cache_max_bytes,
        max_bytes=settings.blob_max_bytes,
    )


class WorkerNode:
    def __init__(
        self,
        settings: Settings,
        executor: RunExecutor,
        metrics: ServiceMetrics,
        *,
        blobs: BlobStore | None = None,
    ) -> None:
        self.settings = settings
        self.executor = executor
        self.metrics = metrics
        if executor.egress is not None:  # every egress connection is counted
            executor.egress.log.add_sink(metrics.egress.observe)
        if executor.pool is not None:
            metrics.bind_pool(executor.pool.profiles)
        self.db = Database(settings, role="worker")
        # Its egress connections in the cluster's audit log, as a daemon writes its own.
        self.audit = AuditLog(PgAuditStore(self.db), retention_s=settings.audit_retention_s)
        self.egress_audit = EgressAudit(self.audit, self._tenant_of)
        if executor.egress is not None:
            executor.egress.log.add_sink(self.egress_audit.observe)
        self._remote: HttpBlobStore | None = None  # None: the API node's own store is given
        if blobs is None:
            self._remote = blobs = remote_blobs(settings, self.db)
        self.blobs: BlobStore = blobs
        # A run's or session's promoted files count toward its tenant's storage quota.
        tenants = PgTenantStore(self.db)
        self.datasets = DatasetService(settings, PgDatasetStore(self.db), self.blobs, tenants)
        if executor.datasets is not None:
            executor.datasets.connect(self.datasets)
        self.worker = Worker(settings, executor, self.db, metrics)
        self.worker.datasets = self.datasets
        self.sessions = SessionHost(self.worker, self.blobs)
        self.prewarm = Prewarmer(settings, executor)
        self.started = False
        self.startup_error: Exception | None = None

    def start(self) -> None:
        """Raises:
        ConfigurationError: the database cannot be reached, or its schema is too old."""
        self.sessions.attach()  # its channel, before the worker starts listening
        self.worker.start()
        self.audit.start()
        self.sessions.start()
        try:
            self.executor.start_pool()  # after the worker's sweep, which spares its own
        except Exception as exc:
            logger.warning("the warm pool did not start: {}", exc)
        self.prewarm.start()
        self.started = True

    def begin_shutdown(self) -> None:
        self.sessions.begin_shutdown()
        self.worker.begin_shutdown()

    def stop(self) -> None:
        try:
            self.sessions.stop()  # first: the sessions end as closed while the lease is live
        finally:
            self.worker.stop()
            try:
                self.executor.close()
            except Exception as exc:
                logger.warning("executor close() failed: {}", exc)
            if self._remote is not None:
                self._remote.close()
            self.egress_audit.close()
            self.audit.stop()
            self.db.close()

    def _tenant_of(self, owner: str) -> str | None:
        """The tenant of a run or session, by its id (blocking: the database is read)."""
        record = self.worker.store.get(owner)
        if record is not None:
            return record.tenant
        info = self.sessions.registry.get(owner)
        return None if info is None else info.tenant

    # -- readiness ---------------------------------------------------------------------
    def probes(self) -> dict[str, Callable[[], Check]]:
        probes = {
            **engine_probes(self.executor),
            "writable": writable_probe(self.executor, self.settings.data_dir),
            "lease": self.check_lease,
        }
        remote = self._remote
        if remote is not None:
            probes["api_nodes"] = lambda: check_storage(remote)
        return probes

    def instant_checks(self) -> list[Check]:
        return [
            *([self.prewarm.check()] if self.prewarm.sets else []),
            warm_pool_check(self.executor.pool),
        ]

    def check_lease(self) -> Check:
        """The database answers and this worker's lease is live."""
        try:
            with self.db.connection(timeout_s=3) as conn:
                conn.execute("SELECT 1")
        except Exception as exc:
            return Check.failed("lease", exc)
        if not self.worker.lease_ok:
            return Check("lease", False, "this worker's lease is not renewed yet")
        return Check("lease", True, f"live as {self.worker.name} ({self.worker.id})")


def check_storage(remote: HttpBlobStore) -> Check:
    """An API node answers at its advertised URL, to this worker's node secret."""
    try:
        url = remote.probe()
    except AiDataAgentError as exc:
        return Check("api_nodes", False, f"the cluster's storage cannot be reached: {exc}")
    return Check("api_nodes", True, f"the cluster's storage answers at {url}")
