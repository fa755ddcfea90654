"""The daemon's parts wired together, with the start and stop the ASGI lifespan drives.

    daemon = Daemon(settings, executor)
    daemon.start()          # blocking: store, stale records, orphan sweep, workers, reaper
    ...                     # the HTTP app serves requests
    daemon.begin_shutdown() # SIGTERM: new runs get 503, running ones get the grace period
    daemon.stop()           # blocking: drain, stop workers and reaper, close the store

`start` marks every record a previous process left ``queued`` or ``running`` as
``interrupted`` before any request is served, then removes every sandbox that
does not belong to this daemon's executor. One daemon per Docker engine: a
second daemon on the same engine would remove the first one's sandboxes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from loguru import logger

from ai_data_agent.checks import Check
from ai_data_agent.service.audit import AuditLog
from ai_data_agent.service.audit_store import AUDIT_FILENAME, AuditStore
from ai_data_agent.service.auth import TokenAuth
from ai_data_agent.service.checkpoint_records import KEY_FILENAME, Signer, load_key
from ai_data_agent.service.checkpoint_store import CHECKPOINTS_FILENAME, CheckpointStore
from ai_data_agent.service.checkpoints import Checkpoints
from ai_data_agent.service.cpu_usage import CpuAccount, CpuStore
from ai_data_agent.service.datasets.keeper import DatasetKeeper
from ai_data_agent.service.datasets.service import DatasetService
from ai_data_agent.service.datasets.sqlite_store import DATASETS_FILENAME, DatasetStore
from ai_data_agent.service.dispatcher import Dispatcher
from ai_data_agent.service.egress_audit import EgressAudit
from ai_data_agent.service.health import engine_probes, probe, warm_pool_check, writable_probe
from ai_data_agent.service.kept_sessions import KeptSessions
from ai_data_agent.service.metrics import ServiceMetrics
from ai_data_agent.service.node import RunExecutor
from ai_data_agent.service.prewarm import Prewarmer
from ai_data_agent.service.reaper import Reaper
from ai_data_agent.service.session_store import SESSIONS_FILENAME, SessionStore
from ai_data_agent.service.sessions import SessionManager
from ai_data_agent.service.store import STORE_FILENAME, RunStore
from ai_data_agent.service.tenant_store import TENANTS_FILENAME, TenantStore
from ai_data_agent.settings import Settings
from ai_data_agent.storage import BlobStore, LocalBlobStore

__all__ = ["REASON_STALE", "Daemon"]

REASON_STALE = "the controller stopped while the run was in flight; found at its next start"


class Daemon:
    """Store, dispatcher, reaper, metrics and auth of one daemon process."""

    def __init__(self, settings: Settings, executor: RunExecutor) -> None:
        self.settings = settings
        self.executor = executor
        self.store = RunStore(settings.data_dir / STORE_FILENAME)
        self.metrics = ServiceMetrics()
        if executor.egress is not None:  # every egress connection is counted
            executor.egress.log.add_sink(self.metrics.egress.observe)
        if executor.pool is not None:
            self.metrics.bind_pool(executor.pool.profiles)
        self.tenants = TenantStore(settings.data_dir / TENANTS_FILENAME)
        self.auth = TokenAuth(settings, self.tenants)
        self.cpu = CpuAccount(CpuStore(settings.data_dir / TENANTS_FILENAME), self.metrics)
        self.audit = AuditLog(
            AuditStore(settings.data_dir / AUDIT_FILENAME, fsync=settings.audit_fsync),
            retention_s=settings.audit_retention_s,
        )
        self.blobs: BlobStore = LocalBlobStore(settings.storage_root)
        records = DatasetStore(settings.data_dir / DATASETS_FILENAME)
        self.datasets = DatasetService(settings, records, self.blobs, self.tenants)
        if executor.datasets is not None:
            executor.datasets.connect(self.datasets)
        keeper = DatasetKeeper(self.datasets, executor.datasets)
        keeper.bind_metrics(self.metrics.registry)
        self.dispatcher = Dispatcher(
            settings,
            executor,
            self.store,
            self.metrics,
            self.datasets,
            tenants=self.tenants,
            cpu=self.cpu,
        )
        session_store = SessionStore(
            settings.data_dir / SESSIONS_FILENAME, node=executor.controller_id
        )
        checkpoints = CheckpointStore(settings.data_dir / CHECKPOINTS_FILENAME)
        keeper.keep_blobs_of(checkpoints.digests)  # one sweep of the blob store, for both
        self.sessions = KeptSessions(
            Checkpoints(
                settings,
                SessionManager(
                    settings,
                    executor,
                    session_store,
                    self.metrics,
                    self.datasets,
                    tenants=self.tenants,
                    cpu=self.cpu,
                ),
                checkpoints,
                self.blobs,
                Signer(lambda: load_key(settings.data_dir / KEY_FILENAME)),
                self.metrics,
            )
        )
        self.prewarm = Prewarmer(settings, executor)
        self.reaper = Reaper(settings, executor, self.store, self.metrics, also=keeper.tick)
        self.egress_audit = EgressAudit(self.audit, self._tenant_of)
        if executor.egress is not None:  # and written to the audit log
            executor.egress.log.add_sink(self.egress_audit.observe)
        self.started = False
        self.startup_error: Exception | None = None

    def start(self) -> None:
        """Open the store, settle a previous process's leftovers, start workers and reaper.

        Raises:
            ConfigurationError: the store cannot be opened or written.
        """
        self.store.open()
        self.tenants.open()
        self.cpu.ledger.open()
        self.audit.start()
        self.datasets.records.open()
        stale = self.store.interrupt_active(REASON_STALE)
        if stale:
            logger.warning("marked {} run(s) of a previous process interrupted", len(stale))
        self.reaper.sweep_orphans(tuple(stale))
        self.reaper.apply_retention()
        self.sessions.start()
        self._executor_hook(self.executor.start_pool)  # after the sweep, which spares our own
        if self.executor.env_cache is not None:  # a first install finds its staging volume made
            self._executor_hook(self.executor.env_cache.prepare)
        if self.executor.egress is not None:  # the proxy runs on its own thread in this process
            self._executor_hook(self.executor.egress.start)
        self.prewarm.start()
        self.dispatcher.start()
        self.reaper.start()
        self.started = True
        logger.info(
            "daemon started: controller {}, store {}, {} worker(s), queue {}, auth {}",
            self.executor.controller_id,
            self.store.path,
            self.settings.max_concurrent_runs,
            self.settings.max_queued_runs,
            "on" if self.auth.enabled else "off",
        )

    def begin_shutdown(self) -> None:
        """Refuse new runs and sessions and start the grace period; returns at once."""
        self.sessions.begin_shutdown()
        self.dispatcher.begin_shutdown()

    def stop(self) -> None:
        """Drain (up to the grace period), stop everything, close the store. Idempotent."""
        try:
            self.dispatcher.stop()
        finally:
            self.sessions.stop()
            self.reaper.stop()
            self._executor_hook(self.executor.close)  # drains the executor's warm pool, if any
            self.egress_audit.close()
            self.audit.stop()  # after the last answer: every entry is written
            self.tenants.close()
            self.cpu.ledger.close()
            self.store.close()
            self.datasets.records.close()
        logger.info("daemon stopped")

    def _tenant_of(self, owner: str) -> str | None:
        """The tenant of a run or session, by its id (blocking: a store is read)."""
        record = self.store.get(owner)
        if record is not None:
            return record.tenant
        info = self.sessions.get(owner)
        return None if info is None else info.tenant

    @staticmethod
    def _executor_hook(hook: Callable[[], None]) -> None:
        """Call an executor's hook (``start_pool``, ``prepare``, ``close``); log, never raise."""
        try:
            hook()
        except Exception as exc:
            logger.warning("executor {}() failed: {}", hook.__name__, exc)

    @property
    def checkpoints(self) -> KeptSessions:
        """Checkpoints are the kept sessions' own calls (`node.CheckpointService`)."""
        return self.sessions

    # -- what the app asks (see `node.ServiceNode`) -----------------------------------
    def probes(self) -> dict[str, Callable[[], Check]]:
        return {
            **engine_probes(self.executor),
            "store": probe("store", self.store.probe_writable, "writable"),
            "writable": writable_probe(
                self.executor, self.settings.data_dir, self.settings.storage_root
            ),
        }

    def instant_checks(self) -> list[Check]:
        return [
            *([self.prewarm.check()] if self.prewarm.sets else []),
            warm_pool_check(self.executor.pool),
        ]

    def details(self) -> list[Check]:
        return [self._environments()]

    def _environments(self) -> Check:
        cache = self.executor.env_cache
        if cache is None:
            return Check("environments", True, "no cache (install_mode per_run)")
        try:
            cached = cache.index.all()
        except Exception as exc:
            return Check.failed("environments", exc)
        size = sum(env.size_bytes for env in cached) / 2**20
        return Check("environments", True, f"{len(cached)} cached, {size:.0f} MiB")

    def artifact_body(self, run_id: str, path: str) -> Path | None:
        """The artifact's file in the run's own directory (never outside it), or None."""
        base = self.dispatcher.artifacts_dir(run_id)
        target = base / path
        if not target.is_file() or not target.resolve().is_relative_to(base.resolve()):
            return None
        return target
