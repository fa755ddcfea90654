"""A worker node's parts wired together: its engine, its database pool, runs and sessions.

    node = WorkerNode(settings, Executor(settings), ServiceMetrics())
    node.start()            # schema check, registration, engine sweep, pool, prewarm, work
    node.probes()           # readiness: docker, image, database
    node.stop()

Used by ``ai-data-agent worker`` (with `worker_app` for /healthz, /readyz and
/metrics) and by ``serve --with-worker`` inside an API node. The worker takes
runs and session calls only from the database; it listens on no port for work.
"""

from __future__ import annotations

from collections.abc import Callable

from loguru import logger

from ai_data_agent.checks import Check
from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.cluster.pg_datasets import PgDatasetStore
from ai_data_agent.service.cluster.worker import Worker
from ai_data_agent.service.cluster.worker_sessions import SessionHost
from ai_data_agent.service.datasets.service import DatasetService
from ai_data_agent.service.health import engine_probes
from ai_data_agent.service.metrics import ServiceMetrics
from ai_data_agent.service.node import RunExecutor
from ai_data_agent.service.prewarm import Prewarmer
from ai_data_agent.settings import Settings
from ai_data_agent.storage import LocalBlobStore

__all__ = ["WorkerNode"]


class WorkerNode:
    def __init__(self, settings: Settings, executor: RunExecutor, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.executor = executor
        self.metrics = metrics
        if executor.egress is not None:  # every egress connection is counted
            executor.egress.log.add_sink(metrics.egress.observe)
        self.db = Database(settings, role="worker")
        # The worker reads versions from the storage directory the API nodes share.
        blobs = LocalBlobStore(settings.storage_root)
        self.datasets = DatasetService(settings, PgDatasetStore(self.db), blobs)
        if executor.datasets is not None:
            executor.datasets.connect(self.datasets)
        self.worker = Worker(settings, executor, self.db, metrics)
        self.worker.datasets = self.datasets
        self.sessions = SessionHost(self.worker)
        self.prewarm = Prewarmer(settings, executor)
        self.started = False
        self.startup_error: Exception | None = None

    def start(self) -> None:
        """Raises:
        ConfigurationError: the database cannot be reached, or its schema is too old."""
        self.sessions.attach()  # its channel, before the worker starts listening
        self.worker.start()
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
            self.db.close()

    # -- readiness ---------------------------------------------------------------------
    def probes(self) -> dict[str, Callable[[], Check]]:
        return {**engine_probes(self.executor), "lease": self.check_lease}

    def instant_checks(self) -> list[Check]:
        return [self.prewarm.check()] if self.prewarm.sets else []

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
