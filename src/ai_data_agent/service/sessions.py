"""The daemon's sessions: admission, the registry, cells on worker threads, expiry.

    manager = SessionManager(settings, executor, store, metrics)
    manager.start()                                   # earlier sessions: lost
    info = manager.create(SessionRequest(...))        # blocking: install + container
    handle = manager.submit_cell(info.id, CellRequest(code="1 + 1"))
    await wait_done(handle)                           # service.handles: result, events
    manager.close(info.id); manager.stop()

At most ``max_sessions`` live at once, and their memory (plus what the runs in flight
may take) within the host's budget: beyond either, `SessionLimit` (a tenant beyond its
quota: `QuotaExceeded`). One call per session at a time: a cell while another call runs
is `SessionBusy`, and nothing is queued. Idle sessions and sessions past their maximum
lifetime expire (container removed); later calls get `SessionGone`. Every method is
blocking (call them from worker threads).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from loguru import logger

from ai_data_agent.dataset_models import DatasetVersion
from ai_data_agent.errors import (
    AiDataAgentError,
    NotReady,
    SessionBusy,
    SessionGone,
    SessionLimit,
)
from ai_data_agent.executor import RunEvent, Session
from ai_data_agent.service.cpu_usage import CpuAccount
from ai_data_agent.service.datasets.promote import promote_session
from ai_data_agent.service.datasets.service import DatasetService
from ai_data_agent.service.handles import CellHandle
from ai_data_agent.service.metrics import ServiceMetrics
from ai_data_agent.service.node import SESSION_RETRY_AFTER_S, RunExecutor
from ai_data_agent.service.quotas import admit_session, quotas_of
from ai_data_agent.service.records import SessionRegistry, TenantRecords
from ai_data_agent.session_models import (
    LIVE_SESSION_STATUSES,
    CellRequest,
    CellResult,
    PackagesResult,
    SessionFile,
    SessionInfo,
    SessionRequest,
    SessionStatus,
)
from ai_data_agent.settings import Settings
from ai_data_agent.tenant_models import ADMIN_TENANT, Quotas

__all__ = ["SessionManager"]

EXPIRY_TICK_S = 1.0
KEPT_SESSIONS = 1000
REASON_RESTART = "the daemon stopped while the session was live; found at its next start"
REASON_SHUTDOWN = "the daemon shut down"


Then = Callable[[Session], object] | None  # what follows a cell, the session still held


@dataclass
class _Live:
    session: Session
    tenant: str
    busy: bool = False
    cell: CellHandle | None = None


class SessionManager:
    """See the module docstring; ``tenants`` holds the quotas (None: none, as on a worker)."""

    def __init__(
        self,
        settings: Settings,
        executor: RunExecutor,
        store: SessionRegistry,
        metrics: ServiceMetrics,
        datasets: DatasetService | None = None,
        tenants: TenantRecords | None = None,
        cpu: CpuAccount | None = None,
    ) -> None:
        self.settings = settings
        self.executor = executor
        self.store = store
        self.metrics = metrics
        self.datasets, self.tenants = datasets, tenants  # where promoted files go; the quotas
        self.cpu = cpu  # where a cell's CPU time is charged (None: nowhere)
        self._lock = threading.Lock()
        self._live: dict[str, _Live] = {}
        self._starting_by: Counter[str] = Counter()  # sessions starting, by tenant
        self._starting_memory = 0
        self._stop = threading.Event()
        self._accepting = True
        self._timer: threading.Thread | None = None
        metrics.bind_sessions(lambda: len(self._live))

    @property
    def live_count(self) -> int:
        """Sessions live or starting now."""
        with self._lock:
            return len(self._live) + self._starting_by.total()

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        self.store.open()
        lost = self.store.lose_live(REASON_RESTART)
        if lost:
            logger.warning("marked {} session(s) of a previous process lost", len(lost))
        self._timer = threading.Thread(target=self._expire_loop, name="session-expiry", daemon=True)
        self._timer.start()

    def begin_shutdown(self) -> None:
        """New sessions get 503 from now on; live ones stay until `stop`."""
        with self._lock:
            self._accepting = False

    def stop(self) -> None:
        """Close every live session (their containers go) and stop the expiry timer."""
        self._stop.set()
        with self._lock:
            ids = list(self._live)
        for session_id in ids:
            self.end(session_id, SessionStatus.CLOSED, REASON_SHUTDOWN)
        if self._timer is not None:
            self._timer.join(timeout=5)
        self.store.close()

    # -- sessions ---------------------------------------------------------------------
    def _admit(self, memory_mb: int, tenant: str, quotas: Quotas) -> None:
        """Reserve room for one more session of ``tenant`` (lock held), or raise."""
        s = self.settings
        if not self._accepting:
            raise NotReady("the daemon is shutting down; it starts no new sessions")
        held = sum(1 for live in self._live.values() if live.tenant == tenant)
        admit_session(quotas, tenant, live=held + self._starting_by[tenant], metrics=self.metrics)
        if s.max_sessions == 0:
            raise SessionLimit(
                "sessions are disabled on this server (max_sessions = 0)",
                retry_after=SESSION_RETRY_AFTER_S,
            )
        count = len(self._live) + self._starting_by.total()
        if count >= s.max_sessions:
            raise SessionLimit(
                f"{count} sessions live, the most this server keeps ({s.max_sessions})",
                retry_after=SESSION_RETRY_AFTER_S,
            )
        budget = s.session_memory_budget_mb()
        held = sum(live.session.limits.memory_mb for live in self._live.values())
        reserved = s.max_concurrent_runs * min(s.default_memory_mb, s.max_memory_mb)
        if budget and held + self._starting_memory + memory_mb + reserved > budget:
            raise SessionLimit(
                f"no memory for another {memory_mb} MiB session: sessions hold {held} MiB and "
                f"runs may take {reserved} MiB of this host's {budget} MiB budget",
                retry_after=SESSION_RETRY_AFTER_S,
            )
        self._starting_by[tenant] += 1
        self._starting_memory += memory_mb

    def create(self, request: SessionRequest, *, tenant: str = ADMIN_TENANT) -> SessionInfo:
        """Start a session of ``tenant`` (installs and the container first: seconds).

        Raises:
            RequestRejected: the request breaks a server limit.
            QuotaExceeded: ``tenant`` holds its ``concurrent_sessions``.
            SessionLimit: no room (count or memory).
            NotReady: the daemon is shutting down.
            InstallFailed: its requirements did not install.
            ExecutorError: Docker or the host failed.
        """
        return self.launch(self.executor.new_session(request), tenant)

    def launch(
        self,
        session: Session,
        tenant: str,
        prepare: Callable[[Session], object] | None = None,
        failed: SessionStatus = SessionStatus.LOST,
    ) -> SessionInfo:
        """Admit and start ``session`` of ``tenant``, ``prepare`` it (a resume's restore),
        make it live; a failure ends it ``failed`` and raises (as `create`, or ``prepare``)."""
        quotas = quotas_of(self.tenants, tenant)
        memory = session.limits.memory_mb
        with self._lock:
            self._admit(memory, tenant, quotas)
        try:
            self.store.put(self._info(session, tenant))
            session.start()
            if prepare is not None:
                prepare(session)
        except BaseException:
            session.close(failed, "the session did not start")
            self.store.put(self._info(session, tenant))
            raise
        finally:
            with self._lock:  # starting to live in one step: never counted out between
                self._starting_by[tenant] -= 1
                self._starting_memory -= memory
                if session.status in LIVE_SESSION_STATUSES:  # it started
                    self._live[session.id] = _Live(session, tenant)
        self.metrics.sessions_started.inc()
        info = self._info(session, tenant)
        self.store.put(info)
        return info

    def _info(self, session: Session, tenant: str) -> SessionInfo:
        info = session.info()
        idle = info.last_activity_at + timedelta(seconds=self.settings.session_idle_timeout_s)
        ends = info.created_at + timedelta(seconds=self.settings.session_max_lifetime_s)
        live = info.status in LIVE_SESSION_STATUSES
        update = {"idle_expires_at": idle if live else None, "ends_at": ends, "tenant": tenant}
        return info.model_copy(update=update)

    def get(self, session_id: str) -> SessionInfo | None:
        with self._lock:
            live = self._live.get(session_id)
        if live is not None:
            return self._info(live.session, live.tenant)
        return self.store.get(session_id)

    def sessions(self, *, tenant: str | None = None) -> list[SessionInfo]:
        """Live sessions first, then the ones that ended, newest first (of ``tenant``;
        None: every tenant's)."""
        with self._lock:
            live = {
                sid: self._info(entry.session, entry.tenant)
                for sid, entry in self._live.items()
                if tenant is None or entry.tenant == tenant
            }
        stored = self.store.recent(tenant=tenant)
        return list(live.values()) + [s for s in stored if s.id not in live]

    def _take(self, session_id: str) -> _Live:
        """The live session, marked busy for one call (lock taken here).

        Raises:
            SessionGone: it ended (or never existed here: the caller checks first).
            SessionBusy: another call is in progress.
        """
        with self._lock:
            live = self._live.get(session_id)
            if live is None:
                info = self.store.get(session_id)
                raise SessionGone.ended(session_id, info.status.value if info else None)
            if live.busy:
                raise SessionBusy(
                    f"session {session_id} is busy with another call", session_id=session_id
                )
            live.busy = True
            return live

    def _release(self, live: _Live) -> None:
        with self._lock:
            live.busy = False
        self.store.put(self._info(live.session, live.tenant))

    def hold(self, session_id: str, call: Callable[[Session], object]) -> object:
        """``call`` with the live session held for it alone, as any call is (`SessionBusy`)."""
        live = self._take(session_id)
        try:
            return call(live.session)
        except SessionGone:
            self.end(session_id, SessionStatus.LOST, None)
            raise
        finally:
            self._release(live)

    def close(self, session_id: str) -> SessionInfo | None:
        """End a session now (a running cell ends with it); None when it is unknown."""
        self.end(session_id, SessionStatus.CLOSED, "closed by request")
        return self.store.get(session_id)

    def end(self, session_id: str, status: SessionStatus, reason: str | None) -> None:
        """End a live session as ``status`` (``paused`` by a keeper); its container goes."""
        with self._lock:
            live = self._live.pop(session_id, None)
        if live is None:
            return
        self._cell_cpu(live)  # what ran after its last cell is charged too
        live.session.close(status, reason)
        self.store.put(self._info(live.session, live.tenant))
        self.metrics.sessions_ended.labels(status=live.session.status.value).inc()

    # -- cells ------------------------------------------------------------------------
    def submit_cell(self, session_id: str, request: CellRequest, then: Then = None) -> CellHandle:
        """Start a cell on a worker thread; its handle at once. ``then`` follows a cell that
        ended with a result, the session still held (a checkpoint's order).

        Raises:
            SessionGone, SessionBusy: as for any call; nothing was queued.
        """
        live = self._take(session_id)
        session = live.session
        handle = CellHandle(session_id, session.execution_count + 1, request.code)
        live.cell = handle
        handle.events.publish("status", {"status": "running", "execution_count": handle.count})
        worker = threading.Thread(
            target=self._run_cell,
            args=(live, request, handle, then),
            name=f"cell-{session_id[:8]}",
            daemon=True,
        )
        worker.start()
        return handle

    def _run_cell(self, live: _Live, request: CellRequest, handle: CellHandle, then: Then) -> None:
        session = live.session
        generation = session.generation

        def on_event(event: RunEvent) -> None:
            if event.kind in ("stdout", "stderr"):
                handle.events.publish(event.kind, {"data": event.data})
            elif event.kind == "display":
                handle.events.publish_json("display", event.data)

        result: CellResult | None = None
        error: AiDataAgentError | None = None
        try:
            result = session.run(request.code, timeout_s=request.timeout_s, on_event=on_event)
            result.cpu_seconds = self._cell_cpu(live)
            self.store.put_cell(result, request.code)
            if then is not None:
                then(session)
            self.metrics.cells.labels(status=result.status.value).inc()
            self.metrics.kernel_restarts.inc(max(result.generation - generation, 0))
            handle.events.publish_json("result", result.model_dump_json())
        except AiDataAgentError as exc:
            error = exc
            if isinstance(exc, SessionGone):
                self.end(session.id, SessionStatus.LOST, str(exc))
            handle.events.publish("error", {"message": str(exc)})
        except Exception as exc:  # a worker must outlive any one cell
            logger.bind(run_id=session.id).opt(exception=exc).error("cell crashed: {}", exc)
            error = AiDataAgentError("internal error; see the daemon's log")
            handle.events.publish("error", {"message": str(error)})
        finally:
            handle.events.close()
            with self._lock:
                live.cell = None
            self._release(live)
            handle.set_done(result, error)

    def _cell_cpu(self, live: _Live) -> float | None:
        """The container's CPU seconds since the last reading, charged to the session's
        tenant: what a cell used (and anything running in between), or, at the session's
        end, what ran after its last cell."""
        wire = live.session.wire
        used = wire.link.cpu_used_s() if wire is not None else None
        if self.cpu is not None:
            self.cpu.charge(live.tenant, used, object_id=live.session.id)
        return None if used is None else round(used, 4)

    def cell(self, session_id: str, count: int) -> CellHandle | CellResult | None:
        """The running cell's handle, a finished cell's result, or None."""
        with self._lock:
            live = self._live.get(session_id)
            handle = live.cell if live is not None else None
        if handle is not None and handle.count == count and not handle.done:
            return handle
        return self.store.get_cell(session_id, count)

    # -- other calls ------------------------------------------------------------------
    def interrupt(self, session_id: str) -> bool:
        with self._lock:
            live = self._live.get(session_id)
        if live is None:
            raise SessionGone(f"session {session_id} is not live", session_id=session_id)
        return live.session.interrupt()

    def restart(self, session_id: str) -> SessionInfo:
        self.hold(session_id, lambda s: s.restart())
        self.metrics.kernel_restarts.inc()
        info = self.get(session_id)
        assert info is not None
        return info

    def install(self, session_id: str, requirements: list[str]) -> PackagesResult:
        result = self.hold(session_id, lambda s: s.install(requirements))
        assert isinstance(result, PackagesResult)
        return result

    def upload(self, session_id: str, path: str, data: bytes) -> str:
        return str(self.hold(session_id, lambda s: s.upload(path, data)))

    def download(self, session_id: str, path: str) -> bytes:
        data = self.hold(session_id, lambda s: s.download(path))
        assert isinstance(data, bytes)
        return data

    def files(self, session_id: str) -> list[SessionFile]:
        found = self.hold(session_id, lambda s: s.files())
        assert isinstance(found, list)
        return found

    def promote(self, session_id: str, tenant: str, name: str, paths: list[str]) -> DatasetVersion:
        datasets = self.datasets
        if datasets is None:
            raise NotReady("this node keeps no datasets")
        version = self.hold(session_id, lambda s: promote_session(datasets, s, tenant, name, paths))
        assert isinstance(version, DatasetVersion)
        return version

    # -- expiry -----------------------------------------------------------------------
    def expire(self, now: datetime | None = None) -> list[str]:
        """End sessions idle too long (unless busy) or past their maximum lifetime."""
        now = now or datetime.now(UTC)
        with self._lock:
            doomed = [
                (sid, why) for sid, live in self._live.items() if (why := self._due(live, now))
            ]
        for session_id, reason in doomed:
            self.end(session_id, SessionStatus.EXPIRED, reason)
        return [sid for sid, _ in doomed]

    def _due(self, live: _Live, now: datetime) -> str | None:
        """Why ``live`` expires now, or None."""
        session = live.session
        if now - session.created_at > timedelta(seconds=self.settings.session_max_lifetime_s):
            return "maximum lifetime reached"
        idle_s = (now - session.last_activity_at).total_seconds()
        paused = self.settings.session_idle_action == "pause"  # by a keeper, not expired
        if not (paused or live.busy) and idle_s > self.settings.session_idle_timeout_s:
            return "idle timeout"
        return None

    def _expire_loop(self) -> None:
        while not self._stop.wait(EXPIRY_TICK_S):
            try:
                self.expire()
                self.store.delete_before(KEPT_SESSIONS)
            except Exception as exc:
                logger.warning("session expiry failed: {}", exc)
