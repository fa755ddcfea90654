"""Admission, the bounded queue and the worker threads that call `Executor.run`.

    dispatcher = Dispatcher(settings, executor, store, metrics)
    dispatcher.start()
    limits = resolve_run(request, settings)       # at admission: refused requests never get here
    handle = dispatcher.submit(request, limits)   # durable record, then queued; or QueueFull
    await wait_done(handle)                    # from the event loop, without a thread
    handle.result                              # the final RunResult
    async for name, data in handle.events.follow(): ...   # live status, output, result
    dispatcher.cancel(handle.id)               # queued: cancelled at once; running: killed
    dispatcher.begin_shutdown()                # SIGTERM: refuse new runs, drain, then stop
    dispatcher.stop()

At most ``max_concurrent_runs`` runs execute at once (one worker thread each)
and at most ``max_queued_runs`` wait; a submission beyond that raises
`QueueFull` and leaves no record. The record is committed before the run is
queued, so nothing a client heard of can be lost, and every run ends with
exactly one terminal write (`RunStore.finish` is conditional); its handle then
carries the final `RunResult`. Blocking methods are for worker threads
(``anyio.to_thread``), never the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol

from loguru import logger

from ai_data_agent.egress.proxy import EgressProxy
from ai_data_agent.errors import AiDataAgentError, NotReady, QueueFull
from ai_data_agent.executor import RunEvent
from ai_data_agent.executor.backend import Backend
from ai_data_agent.executor.envcache import EnvCache
from ai_data_agent.executor.events import EventHandler
from ai_data_agent.models import Limits, RunRequest, RunResult, RunStatus
from ai_data_agent.service.events import RunEvents
from ai_data_agent.service.metrics import ServiceMetrics
from ai_data_agent.service.store import RunStore
from ai_data_agent.settings import Settings

__all__ = [
    "CANCEL_WAIT_S",
    "RETRY_AFTER_S",
    "Dispatcher",
    "RunExecutor",
    "RunHandle",
    "wait_done",
]

RETRY_AFTER_S = 5.0  # what a full queue suggests; a run takes seconds, a slot frees as fast
# How long a cancel is waited for: the sandbox is killed and removed within this.
CANCEL_WAIT_S = 60.0
# After the grace period, cancelled runs get this long to be killed and removed
# (the executor notices a cancel within 0.25 s; kill, wait and remove are bounded).
STOP_SLACK_S = 30.0
REASON_SHUTDOWN_QUEUED = "the controller shut down before the run started"
REASON_SHUTDOWN_RUNNING = "the controller shut down; the run was stopped after the grace period"
REASON_CANCELLED_QUEUED = "cancelled by request before it started"
ARTIFACTS_SUBDIR = "artifacts"
# Executor phases that clients see as `status` events (beside queued and the end).
LIVE_STATUSES = ("installing", "running", "collecting")


class RunExecutor(Protocol):
    """What the daemon needs of an `Executor` (unit tests pass a fake one)."""

    @property
    def controller_id(self) -> str: ...

    @property
    def backend(self) -> Backend: ...

    @property
    def env_cache(self) -> EnvCache | None: ...

    @property
    def egress(self) -> EgressProxy | None: ...

    def run(
        self,
        request: RunRequest,
        *,
        run_id: str | None = None,
        on_event: EventHandler | None = None,
        cancel: threading.Event | None = None,
        artifacts_dir: Path | None = None,
        limits: Limits | None = None,
    ) -> RunResult:
        """Blocking and thread-safe."""

    def start_pool(self) -> None: ...

    def close(self) -> None: ...


class RunHandle:
    """An accepted run while this process owns it: its cancel switch, completion and result."""

    def __init__(self, run_id: str, request: RunRequest, limits: Limits) -> None:
        self.id = run_id
        self.request = request
        self.limits = limits
        self.result: RunResult | None = None  # when done; None if no worker finished it
        self.cancel = threading.Event()
        self.state: Literal["queued", "running", "done"] = "queued"
        self.interrupted = False  # stopped by shutdown, not by a client
        self.events = RunEvents()
        self._lock = threading.Lock()
        self._done = False
        self._callbacks: list[Callable[[], None]] = []

    @property
    def done(self) -> bool:
        return self._done

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on some thread) once the terminal record is written."""
        with self._lock:
            if not self._done:
                self._callbacks.append(callback)
                return
        callback()

    def set_done(self, result: RunResult | None = None) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
            self.result = result
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()


async def wait_done(handle: RunHandle) -> None:
    """Wait on the event loop, without holding a thread, until ``handle`` is done."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    def notify() -> None:
        try:
            loop.call_soon_threadsafe(resolve)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    handle.add_done_callback(notify)
    await future


class Dispatcher:
    """Runs accepted requests on worker threads. See the module docstring."""

    def __init__(
        self, settings: Settings, executor: RunExecutor, store: RunStore, metrics: ServiceMetrics
    ) -> None:
        self._settings = settings
        self._executor = executor
        self._store = store
        self._metrics = metrics
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: deque[RunHandle] = deque()
        self._handles: dict[str, RunHandle] = {}  # queued and running, by id
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
            return len(self._handles)

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
    def submit(self, request: RunRequest, limits: Limits) -> RunHandle:
        """Record ``request`` as ``queued`` (durably) and queue it, to run with ``limits``
        (the request's, resolved against the settings at admission).

        Raises:
            QueueFull: no room; nothing was recorded.
            NotReady: the daemon is starting or shutting down.
            sqlite3.Error: the record could not be written; nothing was queued.
        """
        with self._lock:
            if self._state != "accepting":
                reason = "starting" if self._state == "new" else "shutting down"
                raise NotReady(f"the daemon is {reason}; it takes no new runs")
            if len(self._handles) >= self.capacity:
                self._metrics.rejected.labels(reason="queue_full").inc()
                raise QueueFull(
                    f"{self._running} run(s) running and {len(self._queue)} queued, the most "
                    f"this daemon takes ({self._settings.max_concurrent_runs} + "
                    f"{self._settings.max_queued_runs})",
                    retry_after=RETRY_AFTER_S,
                )
            handle = RunHandle(uuid.uuid4().hex, request, limits)
            # Under the lock, so the worker that picks it up finds the record.
            self._store.insert(handle.id, request)
            self._handles[handle.id] = handle
            self._queue.append(handle)
            self._changed.notify_all()
        handle.events.publish("status", {"status": "queued"})
        logger.bind(run_id=handle.id).debug("run queued ({} waiting)", len(self._queue))
        return handle

    def artifacts_dir(self, run_id: str) -> Path:
        """Where a run's artifacts are stored (they expire with its record)."""
        return self._settings.data_dir / ARTIFACTS_SUBDIR / run_id

    def find(self, run_id: str) -> RunHandle | None:
        """The handle of a queued or running run of this process."""
        with self._lock:
            return self._handles.get(run_id)

    def cancel(self, run_id: str) -> RunHandle | None:
        """Cancel a queued run now, or signal a running one to be killed.

        Returns the handle (await `wait_done` for the terminal record), or None
        when this process does not own an active run with that id.
        """
        with self._lock:
            handle = self._handles.get(run_id)
            if handle is None:
                return None
            if handle.state == "queued":
                self._queue.remove(handle)
                self._release(handle)
                was_queued = True
            else:
                handle.cancel.set()
                was_queued = False
        if was_queued:
            self._finish(handle, RunStatus.CANCELLED, None, REASON_CANCELLED_QUEUED)
        else:
            logger.bind(run_id=run_id).info("cancel requested; stopping the sandbox")
        return handle

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
            queued = list(self._queue)
            self._queue.clear()
            for handle in queued:
                self._release(handle)
            self._changed.notify_all()
            running = self._running
        logger.info(
            "shutting down: {} queued run(s) interrupted, {} running get up to {:g} s",
            len(queued),
            running,
            grace,
        )
        for handle in queued:
            self._finish(handle, RunStatus.INTERRUPTED, None, REASON_SHUTDOWN_QUEUED)
        self._drainer = threading.Thread(target=self._drain, name="run-drainer", daemon=True)
        self._drainer.start()

    def _drain(self) -> None:
        with self._lock:
            while self._running and (remaining := self._deadline - time.monotonic()) > 0:
                self._changed.wait(remaining)
            stragglers = [h for h in self._handles.values() if h.state == "running"]
            for handle in stragglers:
                handle.interrupted = True
                handle.cancel.set()
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
                leftovers = list(self._handles.values())
            for handle in leftovers:
                handle.set_done()

    # -- workers ------------------------------------------------------------------------
    def _release(self, handle: RunHandle) -> None:
        """Forget ``handle`` (lock held)."""
        handle.state = "done"
        self._handles.pop(handle.id, None)

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue and self._state == "accepting":
                    self._changed.wait()
                if not self._queue:
                    return
                handle = self._queue.popleft()
                handle.state = "running"
                self._running += 1
            try:
                self._execute(handle)
            except Exception as exc:  # a worker must outlive any one run
                logger.bind(run_id=handle.id).opt(exception=exc).error("worker failed: {}", exc)
            finally:
                with self._lock:
                    self._running -= 1
                    self._release(handle)
                    self._changed.notify_all()
                handle.set_done()

    def _execute(self, handle: RunHandle) -> None:
        log = logger.bind(run_id=handle.id)
        if not self._store.mark_running(handle.id):
            log.warning("run was no longer queued; not started")
            return
        result: RunResult | None = None
        events = handle.events

        def on_event(event: RunEvent) -> None:
            if event.kind == "phase":
                if event.data in LIVE_STATUSES:
                    events.publish("status", {"status": event.data})
            else:
                events.publish(event.kind, {"data": event.data})

        try:
            result = self._executor.run(
                handle.request,
                run_id=handle.id,
                cancel=handle.cancel,
                on_event=on_event,
                artifacts_dir=self.artifacts_dir(handle.id),
                limits=handle.limits,
            )
            status, error = result.status, result.error
        except AiDataAgentError as exc:
            # Host or Docker failure (or bad configuration): a terminal record, no traceback.
            status, error = RunStatus.ERROR, str(exc)
            log.error("run failed on the host: {}", exc)
        except Exception as exc:
            status = RunStatus.ERROR
            error = f"internal error ({type(exc).__name__}); see the daemon's log"
            log.opt(exception=exc).error("run crashed: {}", exc)
        if handle.interrupted:
            status, error = RunStatus.INTERRUPTED, REASON_SHUTDOWN_RUNNING
            if result is not None:
                result = result.model_copy(update={"status": status, "error": error})
        self._finish(handle, status, result, error)

    def _finish(
        self, handle: RunHandle, status: RunStatus, result: RunResult | None, error: str | None
    ) -> None:
        """Write the terminal record (once), count it, wake waiters. Never raises."""
        log = logger.bind(run_id=handle.id)
        try:
            changed = self._store.finish(handle.id, status, result=result, error=error)
        except Exception as exc:
            log.opt(exception=exc).error("cannot record the end of the run ({}): {}", status, exc)
            changed = False
        if changed:
            self._metrics.observe_finished(status, result)
            if result is None:  # the executor logged nothing for it
                log.info("run finished: status={} error={}", status, error)
        final = result or RunResult(id=handle.id, status=status, error=error)
        handle.events.publish("result", final.model_dump(mode="json"))
        handle.events.close()
        handle.set_done(final)
