"""Admission, the bounded queue and the worker threads that call `Executor.run`.

    dispatcher = Dispatcher(settings, executor, store, metrics)
    dispatcher.start()
    limits = resolve_run(request, settings)       # at admission: refused requests never get here
    handle = dispatcher.submit(request, limits)   # durable record, then queued; or QueueFull
    await wait_done(handle)                       # handles.wait_done, from the event loop
    handle.result                                 # the final RunResult
    async for name, data in handle.events.follow(): ...   # live status, output, result
    dispatcher.cancel(handle.id)                  # queued: cancelled at once; running: killed
    dispatcher.begin_shutdown()                   # SIGTERM: refuse new runs, drain, then stop
    dispatcher.stop()

At most ``max_concurrent_runs`` runs execute at once (one worker thread each)
and at most ``max_queued_runs`` wait; a submission beyond that raises
`QueueFull`, and one beyond its tenant's quotas `QuotaExceeded` (``quotas``),
both leaving no record. A free worker takes the next run of the tenant with
the fewest running (`FairQueue`), so one tenant's flood does not starve
another. The record is committed before the run is queued, so nothing a
client heard of can be lost, and every run ends with
exactly one terminal write (`RunStore.finish` is conditional); its handle then
carries the final `RunResult`. Between the two, a worker thread executes the run
with `execution.execute_run`, as a cluster's worker does. Blocking methods are for worker threads
(``anyio.to_thread``), never the event loop.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from loguru import logger

from ai_data_agent.errors import NotReady, QueueFull
from ai_data_agent.models import Limits, RunRequest, RunResult, RunStatus
from ai_data_agent.service.cpu_usage import CpuAccount
from ai_data_agent.service.datasets.service import DatasetService
from ai_data_agent.service.execution import ClaimedRun, execute_run
from ai_data_agent.service.fair_queue import FairQueue
from ai_data_agent.service.handles import RunHandle
from ai_data_agent.service.metrics import ServiceMetrics
from ai_data_agent.service.node import (
    REASON_CANCELLED_QUEUED,
    REASON_SHUTDOWN_QUEUED,
    REASON_SHUTDOWN_RUNNING,
    RUN_RETRY_AFTER_S,
    STOP_SLACK_S,
    RunExecutor,
)
from ai_data_agent.service.quotas import check_runs, quotas_of
from ai_data_agent.service.records import Outcome, TenantRecords
from ai_data_agent.service.store import RunStore
from ai_data_agent.settings import Settings
from ai_data_agent.tenant_models import ADMIN_TENANT, Quotas

__all__ = ["ARTIFACTS_SUBDIR", "Dispatcher"]

ARTIFACTS_SUBDIR = "artifacts"


@dataclass(eq=False)
class _Entry:
    """A run this process holds: the handle its clients wait on, the run its worker executes."""

    handle: RunHandle
    run: ClaimedRun
    state: Literal["queued", "running", "ending", "done"] = "queued"


class Dispatcher:
    """`node.RunDispatcher` of one node: a bounded queue in memory over the SQLite records,
    and a worker thread per concurrent run. See the module docstring. ``tenants`` holds
    the quotas (None: no quotas)."""

    def __init__(
        self,
        settings: Settings,
        executor: RunExecutor,
        store: RunStore,
        metrics: ServiceMetrics,
        datasets: DatasetService | None = None,
        tenants: TenantRecords | None = None,
        cpu: CpuAccount | None = None,
    ) -> None:
        self._settings = settings
        self._executor = executor
        self._store = store
        self._metrics = metrics
        self.datasets = datasets  # where a run's save_outputs_as goes
        self._tenants = tenants
        self._cpu = cpu  # where a run's CPU time is charged (None: nowhere)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: FairQueue[_Entry] = FairQueue()
        self._entries: dict[str, _Entry] = {}  # queued and running, by id
        self._running = 0
        self._state: Literal["new", "accepting", "draining", "stopped"] = "new"
        self._deadline = 0.0  # monotonic end of the shutdown grace period
        self._workers: list[threading.Thread] = []
        self._drainer: threading.Thread | None = None
        metrics.bind_gauges(lambda: len(self._queue), lambda: self._running)

    @property
    def accepting(self) -> bool:
        return self._state == "accepting"

    @property
    def in_flight(self) -> int:
        """Runs this process holds, queued or running (during a drain: those still running)."""
        with self._lock:
            return len(self._entries)

    @property
    def capacity(self) -> int:
        return self._settings.max_concurrent_runs + self._settings.max_queued_runs

    def start(self) -> None:
        with self._lock:
            if self._state != "new":
                return
            self._state = "accepting"
        for number in range(self._settings.max_concurrent_runs):
            worker = threading.Thread(target=self._work, name=f"run-worker-{number}", daemon=True)
            worker.start()
            self._workers.append(worker)

    # -- requests -------------------------------------------------------------------
    def submit(
        self, request: RunRequest, limits: Limits, *, tenant: str = ADMIN_TENANT
    ) -> RunHandle:
        """Record ``request`` as ``queued`` (durably, as ``tenant``'s) and queue it, to run
        with ``limits`` (the request's, resolved against the settings at admission).

        Raises:
            QueueFull: no room; nothing was recorded.
            QuotaExceeded: ``tenant`` holds as many runs as its quotas let it; nothing was
                recorded.
            NotReady: the daemon is starting or shutting down, or the record (or the
                tenant's quotas) could not be written (read); nothing was queued.
        """
        quotas = quotas_of(self._tenants, tenant)
        with self._lock:
            self._admit(tenant, quotas)
            run_id = uuid.uuid4().hex
            entry = _Entry(RunHandle(run_id), ClaimedRun(run_id, request, limits, tenant))
            try:  # under the lock, so the worker that picks it up finds the record
                self._store.insert(entry.run.id, request, tenant=tenant)
            except sqlite3.Error as exc:
                logger.error("cannot record a new run: {}", exc)
                raise NotReady("the run store cannot be written") from exc
            self._entries[entry.run.id] = entry
            self._queue.push(tenant, entry, cap=quotas.concurrent_runs)
            self._changed.notify_all()
        entry.handle.events.publish("status", {"status": "queued"})
        logger.bind(run_id=entry.run.id).debug("run queued ({} waiting)", len(self._queue))
        return entry.handle

    def _admit(self, tenant: str, quotas: Quotas) -> None:
        """Raise unless one more run of ``tenant`` fits (lock held); count a refusal."""
        try:
            self._check_room(tenant, quotas)
        except QueueFull as exc:  # QuotaExceeded too
            self._metrics.observe_rejected(exc, tenant)
            raise

    def _check_room(self, tenant: str, quotas: Quotas) -> None:
        if self._state != "accepting":
            reason = "starting" if self._state == "new" else "shutting down"
            raise NotReady(f"the daemon is {reason}; it takes no new runs")
        if len(self._entries) >= self.capacity:
            raise QueueFull(
                f"{self._running} run(s) running and {len(self._queue)} queued, the most "
                f"this daemon takes ({self._settings.max_concurrent_runs} + "
                f"{self._settings.max_queued_runs})",
                retry_after=RUN_RETRY_AFTER_S,
            )
        running, queued = self._queue.running(tenant), self._queue.queued(tenant)
        slots = self._settings.max_concurrent_runs
        check_runs(quotas, tenant, running=running, queued=queued, slots=slots)

    def artifacts_dir(self, run_id: str) -> Path:
        """Where a run's artifacts are stored (they expire with its record)."""
        return self._settings.data_dir / ARTIFACTS_SUBDIR / run_id

    def find(self, run_id: str) -> RunHandle | None:
        """The handle of a queued or running run of this process."""
        with self._lock:
            entry = self._entries.get(run_id)
        return None if entry is None else entry.handle

    def cancel(self, run_id: str) -> RunHandle | None:
        """Cancel a queued run now, or signal a running one to be killed.

        Returns the handle (await `wait_done` for the terminal record), or None
        when this process does not own an active run with that id.
        """
        with self._lock:
            entry = self._entries.get(run_id)
            if entry is None:
                return None
            was_queued = entry.state == "queued"
            if was_queued:
                self._queue.remove(entry.run.tenant, entry)
                self._release(entry)
            else:
                entry.run.cancel.set()
        if was_queued:
            self._finish(entry, Outcome(RunStatus.CANCELLED, error=REASON_CANCELLED_QUEUED))
        else:
            logger.bind(run_id=run_id).info("cancel requested; stopping the sandbox")
        return entry.handle

    def check_execution(self, run_id: str) -> None:
        """This node executes what it admits: there is always something to run it."""

    # -- shutdown ---------------------------------------------------------------------
    def begin_shutdown(self) -> None:
        """Refuse new runs, interrupt queued ones, give running ones the grace period.

        Returns at once; a background thread stops what still runs at the deadline.
        """
        with self._lock:
            if self._state in ("draining", "stopped"):
                return
            self._state = "draining"
            grace = self._settings.shutdown_grace_s
            self._deadline = time.monotonic() + grace
            queued = self._queue.drain()
            for entry in queued:
                self._release(entry)
            self._changed.notify_all()
            running = self._running
        logger.info(
            "shutting down: {} queued run(s) interrupted, {} running get up to {:g} s",
            len(queued),
            running,
            grace,
        )
        for entry in queued:
            self._finish(entry, Outcome(RunStatus.INTERRUPTED, error=REASON_SHUTDOWN_QUEUED))
        self._drainer = threading.Thread(target=self._drain, name="run-drainer", daemon=True)
        self._drainer.start()

    def _drain(self) -> None:
        with self._lock:
            while self._running and (remaining := self._deadline - time.monotonic()) > 0:
                self._changed.wait(remaining)
            stragglers = [e for e in self._entries.values() if e.state == "running"]
            for entry in stragglers:
                entry.run.interrupt()
        if stragglers:
            logger.warning("grace period over; stopping {} run(s)", len(stragglers))

    def stop(self) -> None:
        """`begin_shutdown`, wait for the workers, and record anything stuck as interrupted."""
        self.begin_shutdown()
        if self._drainer is not None:
            self._drainer.join()
        with self._lock:
            self._state = "stopped"
            self._changed.notify_all()
        end = time.monotonic() + STOP_SLACK_S
        for worker in self._workers:
            worker.join(max(end - time.monotonic(), 0.0))
        stuck = [w.name for w in self._workers if w.is_alive()]
        if stuck:
            logger.error("workers {} did not stop within {:g} s", stuck, STOP_SLACK_S)
            self._store.interrupt_active(REASON_SHUTDOWN_RUNNING)
            with self._lock:
                leftovers = list(self._entries.values())
            for entry in leftovers:
                entry.handle.set_done()

    # -- workers ------------------------------------------------------------------------
    def _release(self, entry: _Entry) -> None:
        """Forget ``entry`` (lock held)."""
        entry.state = "done"
        self._entries.pop(entry.run.id, None)

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue.ready() and self._state == "accepting":
                    self._changed.wait()
                taken = self._queue.pop()
                if taken is None:
                    return
                entry = taken[1]
                entry.state = "running"
                self._running += 1
            try:
                self._execute(entry)
            except Exception as exc:  # a worker must outlive any one run
                logger.bind(run_id=entry.run.id).opt(exception=exc).error("worker failed: {}", exc)
            finally:
                self._vacate(entry)
                with self._lock:
                    self._release(entry)
                entry.handle.set_done()

    def _vacate(self, entry: _Entry) -> None:
        """Give a running entry's slot back (once): its tenant's count drops now, while
        its handle stays findable until the worker is done with it."""
        with self._lock:
            if entry.state != "running":
                return
            entry.state = "ending"
            self._running -= 1
            self._queue.done(entry.run.tenant)
            self._changed.notify_all()

    def _execute(self, entry: _Entry) -> None:
        run = entry.run
        if not self._store.mark_running(run.id):
            logger.bind(run_id=run.id).warning("run was no longer queued; not started")
            return
        publish = entry.handle.events.publish_json
        outcome = execute_run(
            self._executor,
            run,
            publish,
            self.artifacts_dir(run.id),
            log_of="daemon",
            datasets=self.datasets,
            cpu=self._cpu,
        )
        self._vacate(entry)  # before the result is out: whoever hears of it may submit again
        self._finish(entry, outcome)

    def _finish(self, entry: _Entry, outcome: Outcome) -> None:
        """Write the terminal record (once), count it, wake waiters. Never raises."""
        run_id, status, result = entry.run.id, outcome.status, outcome.result
        log = logger.bind(run_id=run_id)
        try:
            changed = self._store.finish(run_id, outcome)
        except Exception as exc:
            log.opt(exception=exc).error("cannot record the end of the run ({}): {}", status, exc)
            changed = False
        if changed:
            self._metrics.observe_finished(status, result, entry.run.tenant)
            if result is None:  # the executor logged nothing for it
                log.info("run finished: status={} error={}", status, outcome.error)
        final = result or RunResult(id=run_id, status=status, error=outcome.error)
        entry.handle.events.publish("result", final.model_dump(mode="json"))
        entry.handle.events.close()
        entry.handle.set_done(final)
