"""A worker node: claims the cluster's queued runs and executes them on this machine's engine.

    worker = Worker(settings, executor, db, metrics)
    worker.start()          # register, sweep this engine, slots, lease renewal, LISTEN
    worker.begin_shutdown() # SIGTERM: claim nothing more, running runs get the grace period
    worker.stop()

Runs arrive only from the database: a NOTIFY on `CHANNEL_QUEUE` (the id only)
wakes the idle slots, each claims the oldest queued run (``FOR UPDATE SKIP
LOCKED``), and a slow poll (``queue_poll_s``) is the safety net for a missed
wake-up. Each run goes through `execution.execute_run` as on one node; its
events go out through the `EventPump`, its artifacts and result in one
conditional terminal write, retried with backoff while the database is
unreachable (the result is kept meanwhile: nothing accepted is lost). A
maintenance thread renews the lease, settles peers whose lease lapsed, and
stops any run of this worker the cluster no longer wants it to run: cancelled
by a client (NOTIFY on `CHANNEL_CANCEL`) or already terminal after a
partition. Stopping a run kills and removes its sandbox; its late write then
loses.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from loguru import logger

from ai_data_agent.errors import ConfigurationError
from ai_data_agent.executor.backend import SweepRule
from ai_data_agent.models import RunStatus
from ai_data_agent.service.cluster.db import Database, Listener
from ai_data_agent.service.cluster.pg_cpu import PgCpuStore
from ai_data_agent.service.cluster.pg_store import (
    CHANNEL_CANCEL,
    CHANNEL_QUEUE,
    Claimed,
    PgRunStore,
)
from ai_data_agent.service.cluster.pg_workers import WorkerRegistry
from ai_data_agent.service.cluster.pump import EventPump
from ai_data_agent.service.cpu_usage import CpuAccount
from ai_data_agent.service.datasets.service import DatasetService
from ai_data_agent.service.execution import ClaimedRun, execute_run
from ai_data_agent.service.metrics import ServiceMetrics
from ai_data_agent.service.node import STOP_SLACK_S, RunExecutor
from ai_data_agent.service.records import Outcome
from ai_data_agent.settings import Settings

__all__ = ["Worker"]

RETRY_MAX_S = 5.0
Extension = Callable[[str, str], None]


class Worker:
    """The runs of one worker node: its slots, its lease, and the runs it must stop.

    Slots are threads that claim and execute; one more renews the lease. See the
    module docstring for how runs arrive and end.
    """

    def __init__(
        self, settings: Settings, executor: RunExecutor, db: Database, metrics: ServiceMetrics
    ) -> None:
        self.settings = settings
        self.executor = executor
        self.db = db
        self.metrics = metrics
        self.id = executor.controller_id  # its sandboxes carry it as their controller label
        self.name = settings.worker_name or socket.gethostname()
        self.scratch = settings.data_dir / "worker"
        self.store = PgRunStore(db, migrate=False)
        self.registry = WorkerRegistry(db)
        self.pump = EventPump(db)
        self.channels = [CHANNEL_QUEUE, CHANNEL_CANCEL]
        self.extensions: dict[str, Extension] = {}  # more channels (sessions) and handlers
        self.on_tick: list[Callable[[], None]] = []
        self.on_lost: list[Callable[[], None]] = []  # the cluster declared this worker lost
        self._lock = threading.Condition()
        self._wakeups = 0
        self._runs: dict[str, ClaimedRun] = {}
        self._accepting = False
        self._stop = threading.Event()
        self._check = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener: Listener | None = None
        self.queued = 0  # the cluster's queue depth, as last seen
        self.datasets: DatasetService | None = None  # where save_outputs_as goes (WorkerNode's)
        self.cpu = CpuAccount(PgCpuStore(db), metrics)  # where runs' and cells' CPU is charged
        self.lease_ok = False
        metrics.bind_gauges(lambda: self.queued, lambda: len(self._runs))

    @property
    def running(self) -> list[str]:
        with self._lock:
            return list(self._runs)

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        """Check the schema, register, sweep this engine, then take work.

        Raises:
            ConfigurationError: no database, or a schema older than this worker.
        """
        try:  # where runs leave their artifacts until the terminal write
            self.scratch.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryDirectory(dir=self.scratch).cleanup()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot write the worker's scratch directory {self.scratch}: {exc.strerror}; "
                "check AI_DATA_AGENT_DATA_DIR"
            ) from exc
        self.store.open()
        self.registry.register(self.id, name=self.name, slots=self.settings.max_concurrent_runs)
        self.lease_ok = True
        self._sweep(SweepRule(keep_controller=self.id))
        self.pump.start()
        self._accepting = True
        channels = self.channels + list(self.extensions)
        self._listener = Listener(self.db, channels, self._on_notify, self._wake_all)
        self._listener.start()
        for number in range(self.settings.max_concurrent_runs):
            self._spawn(self._slot, f"run-slot-{number}")
        self._spawn(self._maintain, "worker-lease")
        logger.info(
            "worker {} ({}) started: {} slot(s), lease {:g} s",
            self.name,
            self.id,
            self.settings.max_concurrent_runs,
            self.settings.lease_timeout_s,
        )

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def begin_shutdown(self) -> None:
        """Claim nothing more; runs in flight get ``shutdown_grace_s``, then are stopped."""
        with self._lock:
            if not self._accepting:
                return
            self._accepting = False
            self._lock.notify_all()
        threading.Thread(target=self._drain, name="worker-drain", daemon=True).start()

    def _drain(self) -> None:
        deadline = time.monotonic() + self.settings.shutdown_grace_s
        with self._lock:
            while self._runs and (left := deadline - time.monotonic()) > 0:
                self._lock.wait(left)
            for run in self._runs.values():
                run.interrupt()

    def stop(self) -> None:
        self.begin_shutdown()
        end = time.monotonic() + self.settings.shutdown_grace_s + STOP_SLACK_S
        for thread in self._threads:
            if thread.name.startswith("run-slot"):
                thread.join(max(end - time.monotonic(), 0.0))
        self._stop.set()
        self._check.set()
        if self._listener is not None:
            self._listener.stop()
        self.pump.stop()
        try:
            self.registry.stop(self.id)
        except psycopg.Error as exc:
            logger.warning("cannot record this worker's stop: {}", exc)
        logger.info("worker {} stopped", self.name)

    # -- wake-ups ---------------------------------------------------------------------
    def _on_notify(self, channel: str, payload: str) -> None:
        if channel == CHANNEL_QUEUE:
            self._wake_slots()
        elif channel == CHANNEL_CANCEL:
            with self._lock:
                mine = payload in self._runs
            if mine:
                self._check.set()
        elif channel in self.extensions:
            self.extensions[channel](channel, payload)

    def _wake_slots(self) -> None:
        with self._lock:
            self._wakeups += 1
            self._lock.notify_all()

    def _wake_all(self) -> None:
        """After a (re)connection: notifications may have been missed."""
        self._wake_slots()
        self._check.set()

    def _slot(self) -> None:
        while True:
            with self._lock:
                if not self._accepting:
                    return
                seen = self._wakeups
            claimed = self._claim()
            if claimed is None:
                with self._lock:
                    if self._wakeups == seen and self._accepting:
                        self._lock.wait(self.settings.queue_poll_s)
                continue
            try:
                self._execute(ClaimedRun(*claimed))
            except Exception as exc:  # never lose a slot
                logger.bind(run_id=claimed[0]).opt(exception=exc).error("slot failed: {}", exc)

    def _claim(self) -> Claimed | None:
        if not self.lease_ok:
            return None
        try:
            return self.store.claim(self.id)
        except psycopg.Error as exc:
            logger.warning("cannot claim work: {}", exc)
            self._stop.wait(1.0)
            return None

    # -- one run ------------------------------------------------------------------------
    def _execute(self, run: ClaimedRun) -> None:
        with self._lock:
            self._runs[run.id] = run
        folder: Path | None = None
        try:
            folder = Path(tempfile.mkdtemp(prefix=f"run-{run.id[:12]}-", dir=self.scratch))

            def publish(name: str, data: str) -> None:
                self.pump.publish(run.id, name, data)

            outcome = execute_run(
                self.executor,
                run,
                publish,
                folder,
                log_of="worker",
                datasets=self.datasets,
                cpu=self.cpu,
            )
        except Exception as exc:  # a slot must outlive any one run, and the run must end
            logger.bind(run_id=run.id).opt(exception=exc).error("worker slot failed: {}", exc)
            outcome = Outcome(RunStatus.ERROR, error=f"the worker failed: {exc}")
        try:
            self.pump.flush(run.id)
            self._finish(run, outcome, folder)
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            with self._lock:
                self._runs.pop(run.id, None)
                self._lock.notify_all()

    def _finish(self, run: ClaimedRun, outcome: Outcome, folder: Path | None) -> None:
        """The terminal write, retried until the database answers (or the worker stops)."""
        run_id, log = run.id, logger.bind(run_id=run.id)
        delay = 0.2
        while True:
            try:
                won = self.store.finish_owned(run_id, self.id, outcome, artifacts_dir=folder)
                break
            except psycopg.Error as exc:
                if self._stop.is_set():
                    log.error("gave up recording the run's end ({}): {}", outcome.status, exc)
                    return
                log.warning("cannot record the run's end yet (retrying): {}", exc)
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            except Exception as exc:  # e.g. an artifact file unreadable: end it without them
                log.opt(exception=exc).error("cannot store the run's result: {}", exc)
                outcome = Outcome(
                    RunStatus.ERROR, error=f"the worker could not store the result: {exc}"
                )
                folder = None
        if won:
            self.metrics.observe_finished(outcome.status, outcome.result, run.tenant)
        else:
            log.warning("the run was already ended elsewhere; this worker's result is dropped")

    # -- maintenance ----------------------------------------------------------------------
    def _maintain(self) -> None:
        """Renew the lease every heartbeat; between beats, woken by a cancel or a
        reconnection, look only for runs to stop."""
        last_sweep = next_beat = time.monotonic()
        while not self._stop.is_set():
            self._check.wait(max(next_beat - time.monotonic(), 0.0))
            self._check.clear()
            if self._stop.is_set():
                return
            try:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.settings.heartbeat_interval_s
                    self._beat()
                self._stop_stale()
            except psycopg.Error as exc:
                self.lease_ok = False
                logger.warning("the database does not answer (runs go on; retrying): {}", exc)
            if time.monotonic() - last_sweep > self.settings.reaper_interval_s:
                self._sweep(SweepRule())
                last_sweep = time.monotonic()

    def _beat(self) -> None:
        self._renew()
        self.registry.expire(lease_s=self.settings.lease_timeout_s)
        self.queued = self._count()
        for tick in self.on_tick:
            tick()

    def _count(self) -> int:
        with self.db.connection() as conn:
            row = conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'queued'").fetchone()
        return int(row[0]) if row else 0

    def _renew(self) -> None:
        if self.registry.heartbeat(self.id):
            self.lease_ok = True
            return
        logger.error(
            "this worker was declared lost (its lease lapsed): its runs were ended elsewhere; "
            "stopping them and registering again"
        )
        self.lease_ok = False
        self._stop_stale()
        for lost in self.on_lost:
            lost()
        self.registry.register(self.id, name=self.name, slots=self.settings.max_concurrent_runs)
        self.lease_ok = True
        self._wake_all()

    def _stop_stale(self) -> None:
        for run_id in self.store.stale_for(self.id, self.running):
            with self._lock:
                run = self._runs.get(run_id)
            if run is not None and not run.cancel.is_set():
                logger.bind(run_id=run_id).info("stopping the run: cancelled or ended elsewhere")
                run.cancel.set()

    def _sweep(self, rule: SweepRule) -> None:
        try:
            removed = self.executor.backend.sweep(rule)
        except Exception as exc:
            logger.warning("sweep of this engine failed (will retry): {}", exc)
            return
        self.metrics.reaped.inc(len(removed))
        if removed:
            logger.info("sweep removed {} sandbox container(s) and volume(s)", len(removed))
