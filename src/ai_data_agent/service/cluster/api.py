"""A cluster's API node: admits runs into the shared PostgreSQL and answers for every run.

    node = ClusterNode(settings)                               # admits and answers only
    node = ClusterNode(settings, executor, with_worker=True)   # and executes, as a worker
    node.start(); ...; node.begin_shutdown(); node.stop()

It needs no Docker engine (unless it also works) and holds no state of its
own: records, events, artifacts and sessions' registry are in the database, so
an API node that dies loses nothing and any API node answers for any run.
Admission is cluster-wide (`PgRunStore.admit`); a database that cannot be
reached means ``/readyz`` 503 and POSTs 503, with nothing recorded. On a timer
it settles workers whose lease lapsed and applies retention, like any node.
Its blobs (``blobs``) are the storage directory all API nodes share; workers
read and write them through its internal routes (`blob_routes`), at the URL it
advertises while it lives (`pg_nodes`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import psycopg
from loguru import logger

from ai_data_agent.checks import Check
from ai_data_agent.executor import Executor
from ai_data_agent.service.audit import AuditLog
from ai_data_agent.service.auth import TokenAuth
from ai_data_agent.service.cluster import pg_events
from ai_data_agent.service.cluster.api_checkpoints import ClusterCheckpoints
from ai_data_agent.service.cluster.api_dispatcher import ClusterDispatcher, unavailable
from ai_data_agent.service.cluster.api_sessions import ClusterSessions
from ai_data_agent.service.cluster.blob_routes import BlobServer
from ai_data_agent.service.cluster.db import Database, Listener
from ai_data_agent.service.cluster.follower import Follower
from ai_data_agent.service.cluster.pg_cpu import PgCpuStore
from ai_data_agent.service.cluster.pg_datasets import PgDatasetStore
from ai_data_agent.service.cluster.pg_nodes import ApiNodes
from ai_data_agent.service.cluster.pg_store import CHANNEL_RUN, PgRunStore
from ai_data_agent.service.cluster.pg_tenants import PgAuditStore, PgTenantStore
from ai_data_agent.service.cluster.pg_workers import CHANNEL_CALL, WorkerRegistry
from ai_data_agent.service.cpu_usage import CpuAccount
from ai_data_agent.service.datasets.keeper import DatasetKeeper
from ai_data_agent.service.datasets.service import DatasetService
from ai_data_agent.service.health import probe, writable_probe
from ai_data_agent.service.metrics import ServiceMetrics
from ai_data_agent.service.node import (
    ArtifactBody,
    CheckpointService,
    RunExecutor,
    SessionService,
)
from ai_data_agent.service.prewarm import Prewarmer
from ai_data_agent.settings import Settings
from ai_data_agent.storage import BlobStore, LocalBlobStore

__all__ = ["ClusterNode"]

WORKERS_KEPT_S = 7 * 24 * 3600.0  # gone workers stay listed this long (their runs name them)


class ClusterNode:
    """`node.ServiceNode` of a cluster's API node (see the module docstring)."""

    def __init__(
        self, settings: Settings, executor: RunExecutor | None = None, *, with_worker: bool = False
    ) -> None:
        self.settings = settings
        self.db = Database(settings, role="api")
        self._store = PgRunStore(self.db, migrate=True)
        self.metrics = ServiceMetrics()
        self.tenants = PgTenantStore(self.db)
        self.cpu = CpuAccount(PgCpuStore(self.db), self.metrics)
        self.auth = TokenAuth(settings, self.tenants)
        self.audit = AuditLog(PgAuditStore(self.db), retention_s=settings.audit_retention_s)
        self.registry = WorkerRegistry(self.db)
        self.follower = Follower(settings, self.db, self._store)
        self._dispatcher = ClusterDispatcher(
            settings, self._store, self.follower, self.metrics, self.tenants, self.registry
        )
        self._sessions: ClusterSessions = ClusterSessions(
            settings, self.db, self.tenants, self.metrics
        )
        self.node_id = uuid.uuid4().hex
        self.api_nodes = ApiNodes(self.db, lease_s=settings.lease_timeout_s)
        # The directory all API nodes share; workers reach it through `blob_server`.
        self.blobs: BlobStore = LocalBlobStore(settings.storage_root)
        self.blob_server = BlobServer(self.blobs, max_bytes=settings.blob_max_bytes)
        self._datasets = DatasetService(settings, PgDatasetStore(self.db), self.blobs, self.tenants)
        self._checkpoints = ClusterCheckpoints(settings, self._sessions, self.db, self.blobs)
        self.listener = Listener(
            self.db, [CHANNEL_RUN, CHANNEL_CALL], self._on_notify, self._on_reconnect
        )
        self.worker = None
        self.prewarm: Prewarmer | None = None
        if with_worker:
            from ai_data_agent.service.cluster.worker_node import WorkerNode

            self.worker = WorkerNode(
                settings, executor or Executor(settings), self.metrics, blobs=self.blobs
            )
            self.prewarm = self.worker.prewarm
        self.dataset_keeper = DatasetKeeper(
            self._datasets, self.worker.executor.datasets if self.worker is not None else None
        )
        self.dataset_keeper.bind_metrics(self.metrics.registry)
        # One sweep of the shared blob store spares datasets' and checkpoints' blobs alike.
        self.dataset_keeper.keep_blobs_of(self._checkpoints.records.digests)
        self.started = False
        self.startup_error: Exception | None = None
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None
        if not with_worker:
            self.metrics.bind_gauges(self._queued, lambda: 0)

    @property
    def store(self) -> PgRunStore:
        return self._store

    @property
    def dispatcher(self) -> ClusterDispatcher:
        return self._dispatcher

    @property
    def sessions(self) -> SessionService:
        return self._sessions

    @property
    def datasets(self) -> DatasetService:
        return self._datasets

    @property
    def checkpoints(self) -> CheckpointService:
        return self._checkpoints

    def start(self) -> None:
        """Connect, migrate, follow; then the worker part, if any.

        Raises:
            ConfigurationError: the database cannot be reached or prepared.
        """
        self._store.open()
        self.blob_server.secret = self.api_nodes.secret()
        self._advertise()
        self.tenants.open()
        self.audit.start()
        self._checkpoints.start()  # the cluster's checkpoint key, before a worker reads it
        self.follower.start()
        self.listener.start()
        if self.worker is not None:
            self.worker.start()
        self._keeper = threading.Thread(target=self._keep, name="cluster-keeper", daemon=True)
        self._keeper.start()
        self._dispatcher.open()
        self.started = True
        logger.info(
            "API node started: database {}, auth {}, {}",
            self.db.conninfo.split("password=")[0][:200],
            "on" if self.auth.enabled else "off",
            "with a worker" if self.worker is not None else "no worker",
        )
        if self.settings.advertise_url is None:
            logger.warning(
                "this API node advertises no URL (AI_DATA_AGENT_ADVERTISE_URL): workers cannot "
                "reach the cluster's storage through it"
            )

    def begin_shutdown(self) -> None:
        self._dispatcher.close()
        if self.worker is not None:
            self.worker.begin_shutdown()

    def stop(self) -> None:
        self.begin_shutdown()
        try:
            if self.worker is not None:
                self.worker.stop()
        finally:
            self._stop.set()
            self.listener.stop()
            self.follower.stop()
            self._sessions.shutdown()
            self._leave()
            self.audit.stop()
            self._store.close()
        logger.info("API node stopped")

    def _on_notify(self, channel: str, payload: str) -> None:
        if channel == CHANNEL_RUN and "/" not in payload:
            self.follower.notify(payload)
        else:  # a call id, or a cell's topic (session id/n)
            self._sessions.notify(payload)

    def _on_reconnect(self) -> None:
        self.follower.resync()
        self._sessions.resync()

    def _advertise(self) -> None:
        if self.settings.advertise_url is not None:
            self.api_nodes.advertise(self.node_id, self.settings.advertise_url)

    def _leave(self) -> None:
        try:
            self.api_nodes.leave(self.node_id)
        except psycopg.Error as exc:
            logger.warning("could not withdraw this API node's URL: {}", exc)

    def _queued(self) -> float:
        try:
            return float(self._store.list(status="queued", limit=1)[1])
        except psycopg.Error:
            return float("nan")

    def _keep(self) -> None:
        """Settle lapsed leases often; apply retention now and then. Never raises."""
        last_retention = 0.0
        while not self._stop.wait(self.settings.heartbeat_interval_s):
            try:
                self._advertise()
                expired = self.registry.expire(lease_s=self.settings.lease_timeout_s)
                if expired.workers:
                    logger.warning(
                        "worker(s) {} lost: {} run(s) interrupted, {} session(s) lost",
                        expired.workers,
                        len(expired.runs),
                        len(expired.sessions),
                    )
                if time.monotonic() - last_retention > self.settings.reaper_interval_s:
                    last_retention = time.monotonic()
                    deleted = self._store.apply_retention(
                        max_age_s=self.settings.retention_max_age_s,
                        max_runs=self.settings.retention_max_runs,
                    )
                    self.metrics.retention_deleted.inc(deleted)
                    self._sessions.housekeeping()
                    self._checkpoints.housekeeping()
                    self.registry.prune(older_than_s=WORKERS_KEPT_S)
                    self.api_nodes.prune()
                    self.dataset_keeper.tick()
            except psycopg.Error as exc:
                logger.warning("cluster housekeeping failed (will retry): {}", exc)

    # -- what the app asks ----------------------------------------------------------
    def _live_workers(self) -> Check:
        """Ready to admit whatever the count; with none, nothing executes (degraded)."""
        try:
            live = self.registry.live(lease_s=self.settings.lease_timeout_s)
        except psycopg.Error as exc:
            return Check.failed("workers", exc)
        return Check("workers", True, f"{live} live", degraded=live == 0)

    def probes(self) -> dict[str, Callable[[], Check]]:
        probes = {
            "database": probe("database", self._store.probe_writable, "writable"),
            "workers": self._live_workers,
            "storage": writable_probe(None, self.settings.storage_root, name="storage"),
        }
        if self.worker is not None:
            probes.update(self.worker.probes())
        return probes

    def instant_checks(self) -> list[Check]:
        return self.worker.instant_checks() if self.worker is not None else []

    def details(self) -> list[Check]:
        """Each worker the cluster knows: live ones first, with their load."""
        try:
            workers = self.registry.listing()
        except psycopg.Error as exc:
            return [Check.failed("workers", exc)]
        return [
            Check(
                f"worker {w.name}",
                w.state == "live",
                f"{w.state}, {w.running} of {w.slots} slot(s) busy, heartbeat "
                f"{w.heartbeat_age_s:.0f} s ago, version {w.version or '?'}",
            )
            for w in workers
        ] or [Check("workers", False, "no worker has registered")]

    def artifact_body(self, run_id: str, path: str) -> ArtifactBody | None:
        try:
            return pg_events.artifact_chunks(self.db, run_id, path)
        except psycopg.Error as exc:
            raise unavailable(exc) from exc
