"""The sessions of one node as the routes see them: a `SessionManager` whose sessions outlive
their containers (`checkpoints.Checkpoints`).

    sessions = KeptSessions(Checkpoints(settings, manager, records, blobs, signer, metrics))
    sessions.start()        # sessions a crash left live, with a checkpoint: paused
    sessions.submit_cell(sid, CellRequest(code="df.shape"))   # a paused session resumes first
    sessions.stop()         # live sessions paused (SIGTERM, an upgrade)

`node.SessionService` and `node.CheckpointService` in one: every call on a
paused session resumes it first; with ``checkpoint_after_each_cell`` a
checkpoint follows each cell (`checkpoints.Checkpoints.after_cell`). On a
timer it pauses idle sessions (``session_idle_action``), expires those paused
past ``session_paused_retention_s``. The blob store's one sweep is the datasets'
keeper's, which spares what checkpoints name.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from loguru import logger

from ai_data_agent.checkpoint_models import CheckpointInfo, ForkRequest, RestoreReport
from ai_data_agent.dataset_models import DatasetVersion
from ai_data_agent.errors import AiDataAgentError, SessionBusy, SessionGone
from ai_data_agent.service.checkpoints import Checkpoints
from ai_data_agent.service.handles import CellHandle
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
from ai_data_agent.tenant_models import ADMIN_TENANT

__all__ = ["KeptSessions"]

TICK_S = 1.0
REASON_SHUTDOWN = "the daemon shut down; the next call resumes it from checkpoint {}"


class KeptSessions:
    """See the module docstring. Every method blocks (call them from threads)."""

    def __init__(self, keeper: Checkpoints, *, keeps_house: bool = True) -> None:
        self.settings = keeper.settings
        self.manager = keeper.manager
        self.keeper = keeper
        # One node recovers what a crash left live, expires paused sessions and sweeps
        # blobs; in a cluster the API nodes and the workers' leases do (a worker may not).
        self.keeps_house = keeps_house
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    @property
    def live_count(self) -> int:
        return self.manager.live_count

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        self.keeper.records.open()
        if self.keeps_house:
            self.keeper.recover()
        self.manager.start()
        self._timer = threading.Thread(target=self._loop, name="session-keeper", daemon=True)
        self._timer.start()

    def begin_shutdown(self) -> None:
        self.manager.begin_shutdown()

    def stop(self) -> None:
        """Pause every live session (a busy one at its last checkpoint, if it has one), then
        stop the manager (what is left is closed)."""
        self._stop.set()
        if self._timer is not None:
            self._timer.join(timeout=5)
        for info in self.manager.sessions():
            if info.status in LIVE_SESSION_STATUSES:
                self._pause_for_shutdown(info)
        self.manager.stop()
        self.keeper.records.close()

    def _pause_for_shutdown(self, info: SessionInfo) -> None:
        try:
            self.keeper.settle(info.id)
            self.keeper.pause(info.id, reason="the daemon shut down; the next call resumes it")
            return
        except SessionBusy:
            record = self.keeper.records.latest(info.id, tenant=None)
            if record is not None:
                self.manager.end(info.id, SessionStatus.PAUSED, REASON_SHUTDOWN.format(record.seq))
        except AiDataAgentError as exc:
            logger.bind(run_id=info.id).warning("no checkpoint at shutdown: {}", exc)

    # -- the sessions API (node.SessionService) -----------------------------------------
    def create(self, request: SessionRequest, *, tenant: str = ADMIN_TENANT) -> SessionInfo:
        return self.manager.create(request, tenant=tenant)

    def get(self, session_id: str) -> SessionInfo | None:
        return self.manager.get(session_id)

    def sessions(self, *, tenant: str | None = None) -> list[SessionInfo]:
        return self.manager.sessions(tenant=tenant)

    def close(self, session_id: str) -> SessionInfo | None:
        """Close a session; a paused one without a container, its checkpoints deleted."""
        info = self.manager.get(session_id)
        if info is not None and info.status == SessionStatus.PAUSED:
            self.keeper.end_paused(info, SessionStatus.CLOSED, "closed by request")
            return self.manager.get(session_id)
        self.keeper.settle(session_id)
        closed = self.manager.close(session_id)
        self.keeper.forget(session_id)
        return closed

    def submit_cell(self, session_id: str, request: CellRequest) -> CellHandle:
        self.keeper.ready(session_id)
        then = self.keeper.after_cell if self.settings.checkpoint_after_each_cell else None
        return self.manager.submit_cell(session_id, request, then)

    def cell(self, session_id: str, count: int) -> CellHandle | CellResult | None:
        return self.manager.cell(session_id, count)

    def cell_code(self, session_id: str, count: int) -> str | None:
        return self.manager.store.cell_code(session_id, count)

    def interrupt(self, session_id: str) -> bool:
        info = self.manager.get(session_id)
        if info is not None and info.status == SessionStatus.PAUSED:
            return False  # nothing runs in a paused session
        return self.manager.interrupt(session_id)

    def restart(self, session_id: str) -> SessionInfo:
        self.keeper.ready(session_id)
        return self.manager.restart(session_id)

    def install(self, session_id: str, requirements: list[str]) -> PackagesResult:
        self.keeper.ready(session_id)
        return self.manager.install(session_id, requirements)

    def upload(self, session_id: str, path: str, data: bytes) -> str:
        self.keeper.ready(session_id)
        return self.manager.upload(session_id, path, data)

    def download(self, session_id: str, path: str) -> bytes:
        self.keeper.ready(session_id)
        return self.manager.download(session_id, path)

    def files(self, session_id: str) -> list[SessionFile]:
        self.keeper.ready(session_id)
        return self.manager.files(session_id)

    def promote(self, session_id: str, tenant: str, name: str, paths: list[str]) -> DatasetVersion:
        self.keeper.ready(session_id)
        return self.manager.promote(session_id, tenant, name, paths)

    # -- checkpoints (node.CheckpointService) -------------------------------------------
    def checkpoint(self, session_id: str) -> CheckpointInfo:
        return self.keeper.checkpoint(session_id)

    def checkpoints(self, session_id: str) -> list[CheckpointInfo]:
        return self.keeper.checkpoints(session_id)

    def pause(self, session_id: str) -> SessionInfo:
        return self.keeper.pause(session_id)

    def resume(self, session_id: str) -> RestoreReport:
        return self.keeper.resume(session_id)

    def fork(
        self, session_id: str, request: ForkRequest, *, tenant: str = ADMIN_TENANT
    ) -> SessionInfo:
        return self.keeper.fork(session_id, request, tenant=tenant)

    # -- the timer ----------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.tick()
            except Exception as exc:
                logger.warning("session keeping failed: {}", exc)

    def tick(self, now: datetime | None = None) -> None:
        """Pause idle sessions, expire long-paused ones (the blob store's one sweep, the
        datasets' keeper, spares what checkpoints name)."""
        now = now or datetime.now(UTC)
        s = self.settings
        idle = timedelta(seconds=s.session_idle_timeout_s)
        kept = timedelta(seconds=s.session_paused_retention_s)
        for info in self.manager.sessions():
            since = now - info.last_activity_at
            if (
                info.status == SessionStatus.IDLE
                and s.session_idle_action == "pause"
                and since > idle
            ):
                self._pause_idle(info)
            elif info.status == SessionStatus.PAUSED and since > kept and self.keeps_house:
                self.keeper.end_paused(info, SessionStatus.EXPIRED, "paused past its retention")

    def _pause_idle(self, info: SessionInfo) -> None:
        try:
            self.keeper.pause(info.id, reason="idle timeout; the next call resumes it")
        except (SessionBusy, SessionGone):
            pass  # a call came, or it ended: not idle any more
        except AiDataAgentError as exc:
            logger.bind(run_id=info.id).warning("cannot pause the idle session: {}", exc)
            self.manager.end(info.id, SessionStatus.EXPIRED, f"idle timeout (not paused: {exc})")
