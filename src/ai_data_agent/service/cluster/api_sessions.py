"""An API node's sessions: every call routed to the worker that holds the session.

    sessions = ClusterSessions(settings, db, tenants, metrics)   # tenants: the quotas
    info = sessions.create(SessionRequest())        # some worker with room starts it
    handle = sessions.submit_cell(info.id, CellRequest(code="1 + 1"))
    await wait_done(handle)                         # fed from the database

`node.SessionService` over the database: a call is a row for the session's
worker (`pg_sessions`), answered there; this node waits on NOTIFY
(`CHANNEL_CALL`, the call id) with a slow poll as the safety net. A session
whose worker is gone is ``lost``: its calls answer ``410 session_gone``, and it
is never started again elsewhere. A ``create`` with no live worker in the
cluster is answered ``503 no_worker`` at once; one that no worker takes within
a poll interval and a second (a worker with room looks at least that often,
even without the NOTIFY) is withdrawn and answered ``429 session_limit`` (or
``no_worker``, when the last worker went meanwhile).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import psycopg

from ai_data_agent.api_models import ErrorDetail
from ai_data_agent.checkpoint_models import RestoreReport
from ai_data_agent.dataset_models import DatasetVersion
from ai_data_agent.errors import (
    AiDataAgentError,
    NotReady,
    NoWorker,
    QuotaExceeded,
    SessionGone,
    SessionLimit,
)
from ai_data_agent.service.cluster import pg_events
from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.cluster.pg_sessions import (
    STARTS,
    Call,
    PgSessionCalls,
    PgSessionRegistry,
)
from ai_data_agent.service.cluster.pg_workers import WorkerRegistry
from ai_data_agent.service.cluster.worker_sessions import FILES
from ai_data_agent.service.handles import CellHandle
from ai_data_agent.service.metrics import ServiceMetrics
from ai_data_agent.service.node import SESSION_RETRY_AFTER_S
from ai_data_agent.service.quotas import quotas_of
from ai_data_agent.service.records import TenantRecords
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
from ai_data_agent.tenant_models import ADMIN_TENANT
from ai_data_agent.wire_errors import rebuild_error

__all__ = ["ClusterSessions"]

START_WAIT_S = 900.0  # installs and the container start, then the answer
OP_WAIT_S = 300.0  # any other call (installs of packages included)
ENDED = ("done", "failed")
KEPT_SESSIONS = 1000
CALLS_KEPT_S = 3600.0


def _error(call: Call) -> AiDataAgentError:
    """The error a failed call stands for, of the class its code names."""
    usage = ErrorDetail.model_validate_json(call.result) if call.result else None
    return rebuild_error(
        call.error_code,
        call.error or "the session call failed",
        retry_after=SESSION_RETRY_AFTER_S if usage is None else None,
        session_id=call.session_id,
        usage=usage,
    )


@dataclass
class _Cell:
    handle: CellHandle
    call_id: int
    topic: str
    last_seq: int = 0
    ended: bool = False  # the worker relayed the final result or error event
    lock: threading.Lock = field(default_factory=threading.Lock)


class ClusterSessions:
    def __init__(
        self, settings: Settings, db: Database, tenants: TenantRecords, metrics: ServiceMetrics
    ) -> None:
        self.settings = settings
        self.db = db
        self.tenants = tenants  # the quotas, checked as a create's call is written
        self.metrics = metrics
        self.registry = PgSessionRegistry(db, node="api", prunes=True)
        self.calls = PgSessionCalls(db)
        self.workers = WorkerRegistry(db)
        self._lock = threading.Condition()
        self._changes = 0
        self._cells: dict[int, _Cell] = {}

    # -- notifications --------------------------------------------------------------
    def notify(self, payload: str) -> None:
        """A call changed (its id), or a cell has events (its topic): look now."""
        with self._lock:
            self._changes += 1
            self._lock.notify_all()
            cells = [c for c in self._cells.values() if payload in (str(c.call_id), c.topic)]
        for cell in cells:
            threading.Thread(target=self._sync_quietly, args=(cell,), daemon=True).start()

    def resync(self) -> None:
        with self._lock:
            self._changes += 1
            self._lock.notify_all()
            cells = list(self._cells.values())
        for cell in cells:
            threading.Thread(target=self._sync_quietly, args=(cell,), daemon=True).start()

    def shutdown(self) -> None:
        """Cells still followed end with `NotReady` (their runs go on on the workers)."""
        with self._lock:
            cells, self._cells = list(self._cells.values()), {}
        for cell in cells:
            cell.handle.events.close()
            cell.handle.set_done(error=NotReady("the API node shut down while the cell ran"))

    # -- calls ------------------------------------------------------------------------
    def _wait(self, call_id: int, timeout_s: float, *, until_started: bool = False) -> Call:
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                seen = self._changes
            call = self.calls.get(call_id)
            if call is None:
                raise SessionGone("the session call vanished")
            if call.status in ENDED or (until_started and call.n is not None):
                return call
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return call
            with self._lock:
                if self._changes == seen:
                    self._lock.wait(min(remaining, self.settings.queue_poll_s))

    def _route(
        self,
        kind: str,
        session_id: str,
        *,
        args: str = "{}",
        payload: bytes | None = None,
        tenant: str = ADMIN_TENANT,
    ) -> Call:
        """Run one call on the session's worker and return its answered row.

        Raises:
            SessionGone: the session ended (or its worker died).
            NotFound: no such session. The call's own error, when it failed.
        """
        worker = self._worker_of(session_id)
        call = self._wait(self._submit(kind, session_id, worker, args, payload, tenant), OP_WAIT_S)
        if call.status == "failed":
            self._forget(call.id)
            raise _error(call)
        if call.status != "done":
            raise NotReady(f"the session's worker did not answer within {OP_WAIT_S:g} s")
        self._forget(call.id)
        return call

    def _forget(self, call_id: int) -> None:
        try:
            self.calls.forget(call_id)
        except psycopg.Error:
            pass  # the keeper prunes ended calls later

    def housekeeping(self) -> None:
        """Ended sessions beyond the newest `KEPT_SESSIONS`, and calls nobody read, go."""
        self.registry.delete_before(KEPT_SESSIONS)
        self.calls.prune(older_than_s=CALLS_KEPT_S)

    def _worker_of(self, session_id: str) -> str:
        """The worker holding the session; a paused one is resumed first, where there is room."""
        try:
            where = self.registry.node_of(session_id)
            if where is not None and where[1] == SessionStatus.PAUSED:
                self.resume_anywhere(session_id)
                where = self.registry.node_of(session_id)
        except psycopg.Error as exc:
            raise NotReady(f"the database cannot be reached: {exc}") from exc
        if where is None or where[1] not in LIVE_SESSION_STATUSES:
            raise SessionGone.ended(session_id, where[1] if where is not None else None)
        return where[0]

    def _submit(
        self,
        kind: str,
        session_id: str,
        worker: str | None,
        args: str,
        payload: bytes | None,
        tenant: str = ADMIN_TENANT,
    ) -> int:
        """A call row; one that starts a session only within ``tenant``'s quota."""
        quotas = quotas_of(self.tenants, tenant) if kind in STARTS else None
        try:
            return self.calls.submit(
                kind, session_id, worker, args=args, payload=payload, tenant=tenant, quotas=quotas
            )
        except QuotaExceeded as exc:
            self.metrics.observe_quota(exc, tenant)
            raise
        except psycopg.Error as exc:
            raise NotReady(f"the database cannot be reached: {exc}") from exc

    def _require_a_worker(self) -> None:
        try:
            live = self.workers.live(lease_s=self.settings.lease_timeout_s)
        except psycopg.Error as exc:
            raise NotReady(f"the database cannot be reached: {exc}") from exc
        if not live:
            raise NoWorker("no live worker in the cluster: a session cannot start until one does")

    def route(
        self, kind: str, session_id: str, *, args: str = "{}", tenant: str = ADMIN_TENANT
    ) -> Call:
        """A call on the worker holding the session (a paused one is resumed first);
        ``tenant`` owns what a fork starts."""
        return self._route(kind, session_id, args=args, tenant=tenant)

    def anywhere(
        self, kind: str, session_id: str, args: str = "{}", tenant: str = ADMIN_TENANT
    ) -> Call:
        """A call any worker with room may take (a create, a resume, a fork of a paused
        session; ``tenant`` owns what a create or a fork starts), answered within the
        time a session takes to start.

        Raises:
            NoWorker: no live worker in the cluster.
            SessionLimit: no worker took it in time. The call's own error, when it failed.
        """
        self._require_a_worker()
        call_id = self._submit(kind, session_id, None, args, None, tenant)
        claim_wait = self.settings.queue_poll_s + 1.0
        call = self._wait(call_id, claim_wait)
        if call.status == "queued" and self.calls.withdraw(
            call_id, "session_limit", "no worker had room for the session"
        ):
            self._require_a_worker()
            raise SessionLimit(
                f"no worker took the session within {claim_wait:g} s (every worker is full)",
                retry_after=SESSION_RETRY_AFTER_S,
            )
        call = self._wait(call_id, START_WAIT_S)
        if call.status == "failed":
            self._forget(call_id)
            raise _error(call)
        if call.status != "done" or call.result is None:
            raise NotReady(f"the session did not start within {START_WAIT_S:g} s")
        self._forget(call_id)
        return call

    def resume_anywhere(self, session_id: str) -> RestoreReport:
        """Resume a paused session on any worker with room (within its tenant's quota): its
        pin moves there."""
        info = self.registry.get(session_id)
        owner = ADMIN_TENANT if info is None else info.tenant
        call = self.anywhere("resume", session_id, tenant=owner)
        return RestoreReport.model_validate_json(call.result or "")

    # -- the sessions API -----------------------------------------------------------
    def create(self, request: SessionRequest, *, tenant: str = ADMIN_TENANT) -> SessionInfo:
        if self.settings.max_sessions == 0:
            raise SessionLimit(
                "sessions are disabled on this server (max_sessions = 0)",
                retry_after=SESSION_RETRY_AFTER_S,
            )
        call = self.anywhere("create", "", request.model_dump_json(), tenant)
        return SessionInfo.model_validate_json(call.result or "")

    def get(self, session_id: str) -> SessionInfo | None:
        return self.registry.get(session_id)

    def sessions(self, *, tenant: str | None = None) -> list[SessionInfo]:
        return self.registry.recent(tenant=tenant)

    def close(self, session_id: str) -> SessionInfo | None:
        where = self.registry.node_of(session_id)
        if where is not None and where[1] == SessionStatus.PAUSED:
            self.registry.end_paused(session_id, SessionStatus.CLOSED, "closed by request")
        if where is None or where[1] not in LIVE_SESSION_STATUSES:
            return self.registry.get(session_id)
        try:
            self._route("close", session_id)
        except SessionGone:
            pass
        return self.registry.get(session_id)

    def interrupt(self, session_id: str) -> bool:
        call = self._route("interrupt", session_id)
        return bool(json.loads(call.result or "{}").get("interrupted"))

    def restart(self, session_id: str) -> SessionInfo:
        return SessionInfo.model_validate_json(self._route("restart", session_id).result or "")

    def install(self, session_id: str, requirements: list[str]) -> PackagesResult:
        args = json.dumps({"requirements": requirements})
        return PackagesResult.model_validate_json(
            self._route("packages", session_id, args=args).result or ""
        )

    def upload(self, session_id: str, path: str, data: bytes) -> str:
        call = self._route("upload", session_id, args=json.dumps({"path": path}), payload=data)
        return str(json.loads(call.result or "{}")["path"])

    def download(self, session_id: str, path: str) -> bytes:
        return (
            self._route("download", session_id, args=json.dumps({"path": path})).result_data or b""
        )

    def files(self, session_id: str) -> list[SessionFile]:
        return FILES.validate_json(self._route("files", session_id).result or "[]")

    def promote(self, session_id: str, tenant: str, name: str, paths: list[str]) -> DatasetVersion:
        args = json.dumps({"tenant": tenant, "name": name, "paths": paths})
        return DatasetVersion.model_validate_json(
            self._route("promote", session_id, args=args).result or ""
        )

    # -- cells ------------------------------------------------------------------------
    def submit_cell(self, session_id: str, request: CellRequest) -> CellHandle:
        worker = self._worker_of(session_id)
        call_id = self._submit("cell", session_id, worker, request.model_dump_json(), None)
        call = self._wait(call_id, OP_WAIT_S, until_started=True)
        if call.status == "failed":
            raise _error(call)
        if call.n is None:
            raise NotReady(f"the session's worker did not answer within {OP_WAIT_S:g} s")
        return self._follow(call)

    def cell(self, session_id: str, count: int) -> CellHandle | CellResult | None:
        call_id = self.calls.running_cell(session_id, count)
        if call_id is not None:
            call = self.calls.get(call_id)
            if call is not None and call.status == "running":
                return self._follow(call)
        return self.registry.get_cell(session_id, count)

    def cell_code(self, session_id: str, count: int) -> str | None:
        return self.registry.cell_code(session_id, count)

    def _follow(self, call: Call) -> CellHandle:
        assert call.n is not None
        with self._lock:
            cell = self._cells.get(call.id)
            if cell is None:
                handle = CellHandle(call.session_id, call.n)
                cell = _Cell(handle, call.id, f"{call.session_id}/{call.n}")
                self._cells[call.id] = cell
        self._sync(cell)
        return cell.handle

    def _from_registry(self, cell: _Cell) -> Call:
        handle = cell.handle
        stored = self.registry.get_cell(handle.session_id, handle.count)
        if stored is not None:
            return Call(
                cell.call_id, handle.session_id, "cell", "done", result=stored.model_dump_json()
            )
        message = "the cell ended and its answer is gone"
        return Call(
            cell.call_id,
            handle.session_id,
            "cell",
            "failed",
            error_code="session_gone",
            error=message,
        )

    def _sync_quietly(self, cell: _Cell) -> None:
        try:
            self._sync(cell)
        except psycopg.Error:
            pass  # the next notification, reconnection or poll looks again

    def _sync(self, cell: _Cell) -> None:
        """Relay the cell's new events; finish the handle once its call has ended."""
        with cell.lock:
            if cell.handle.done:
                return
            call = self.calls.get(cell.call_id)  # first: events written before it are all read
            for seq, name, data in pg_events.after(self.db, cell.topic, cell.last_seq):
                cell.handle.events.publish_json(name, data)
                cell.last_seq = seq
                cell.ended = cell.ended or name in ("result", "error")
            if call is None:  # ended, and its row is gone: the registry has the result
                call = self._from_registry(cell)
            if call.status not in ENDED:
                return
            result, error = None, None
            if call.status == "done" and call.result is not None:
                result = CellResult.model_validate_json(call.result)
            else:
                error = _error(call)
                if not cell.ended:  # the worker died: nobody said so on the stream
                    cell.handle.events.publish("error", {"message": error.message})
            cell.handle.events.close()
            cell.handle.set_done(result, error)
        with self._lock:
            self._cells.pop(cell.call_id, None)
