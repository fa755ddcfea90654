"""Checkpoint, pause, resume and fork: sessions of a `SessionManager` that outlive their container.

    keeper = Checkpoints(settings, manager, records, blobs, signer, metrics)
    keeper.checkpoint(sid)                 # CheckpointInfo: kept, lost (with why), size
    keeper.pause(sid)                      # checkpoint, then the container goes
    keeper.ready(sid)                      # before any call: a paused session resumes
    keeper.fork(sid, ForkRequest())        # a new session from the same state

A resume starts a fresh container (from the pool where one fits) with the
checkpoint's requirements and limits, puts its files back and has its kernel
read the namespace (`executor.session.restore`); the first cell after says
so (``state: restored``, with what came back and what did not, including what
the checkpoint could not keep). A checkpoint's record is signed
(`checkpoint_records.Signer`) and checked before anything is restored; it
belongs to the session's tenant, a fork to the tenant that asked for it. Like
the manager this serves every tenant: `ownership.TenantCheckpoints` is what a
principal may do. The host never unpickles anything of a checkpoint.
`kept_sessions.KeptSessions` puts this in front of the manager's calls.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from loguru import logger

from ai_data_agent.checkpoint_models import CheckpointInfo, ForkRequest, RestoreReport
from ai_data_agent.errors import (
    AiDataAgentError,
    NotFound,
    QuotaExceeded,
    SessionGone,
)
from ai_data_agent.executor import Session
from ai_data_agent.executor.session.checkpoint import (
    StoredFile,
    Taken,
    take_snapshot,
)
from ai_data_agent.executor.session.restore import restore_snapshot
from ai_data_agent.service.checkpoint_records import (
    CheckpointRecord,
    CheckpointRecords,
    Signer,
)
from ai_data_agent.service.metrics import ServiceMetrics
from ai_data_agent.service.quotas import check_storage
from ai_data_agent.service.sessions import SessionManager
from ai_data_agent.session_models import (
    LIVE_SESSION_STATUSES,
    SessionInfo,
    SessionStatus,
)
from ai_data_agent.settings import Settings
from ai_data_agent.storage import BlobStore
from ai_data_agent.tenant_models import ADMIN_TENANT

__all__ = ["Checkpoints"]

KEPT_LISTED = 1000
REASON_RECOVERED = "the daemon stopped; the next call resumes it from checkpoint {}"


class Checkpoints:
    """See the module docstring. Every method blocks (call them from threads)."""

    def __init__(
        self,
        settings: Settings,
        manager: SessionManager,
        records: CheckpointRecords,
        blobs: BlobStore,
        signer: Signer,
        metrics: ServiceMetrics,
    ) -> None:
        self.settings = settings
        self.manager = manager
        self.records = records
        self.blobs = blobs
        self.signer = signer
        self.metrics = metrics
        self._lock = threading.Lock()
        self._resuming: dict[str, threading.Lock] = {}
        self._seqs: dict[str, int] = {}  # the last seq given out, per session
        self._streaming: dict[str, Taken] = {}  # the last checkpoint out of its sandbox
        self._bases: dict[str, tuple[int, tuple[StoredFile, ...]]] = {}  # in the container now

    def recover(self) -> None:
        """Sessions a previous process left live: paused where a checkpoint can resume them
        (the rest are lost, as the manager marks them)."""
        store = self.manager.store
        store.open()
        live = [i for i in store.recent(limit=KEPT_LISTED) if i.status in LIVE_SESSION_STATUSES]
        kept = self.records.with_checkpoints([i.id for i in live])
        for info in live:
            record = self.records.latest(info.id, tenant=None) if info.id in kept else None
            if record is not None:
                store.put(_paused(info, REASON_RECOVERED.format(record.seq), record.seq))
        if kept:
            logger.info("{} session(s) of a previous process paused at their checkpoint", len(kept))

    # -- checkpoints ------------------------------------------------------------------
    def checkpoint(self, session_id: str) -> CheckpointInfo:
        """A checkpoint of the live session now (of a paused one: its latest)."""
        info = self.known(session_id)
        if info.status == SessionStatus.PAUSED:
            record = self.records.latest(session_id, tenant=None)
            if record is not None:
                return record.info()
        self.settle(session_id)
        return self.take_now(session_id).info()

    def checkpoints(self, session_id: str) -> list[CheckpointInfo]:
        self.known(session_id)
        return [r.info() for r in self.records.history(session_id, tenant=None)]

    def pause(self, session_id: str, *, reason: str = "paused by request") -> SessionInfo:
        """Checkpoint, then remove the container: the session holds nothing until resumed."""
        info = self.known(session_id)
        if info.status != SessionStatus.PAUSED:
            self.settle(session_id)

            def take_and_end(session: Session) -> None:
                self.take(session)
                self.manager.end(session_id, SessionStatus.PAUSED, reason)

            self.manager.hold(session_id, take_and_end)
            self._bases.pop(session_id, None)
        paused = self.manager.get(session_id)
        assert paused is not None
        return paused

    def resume(self, session_id: str) -> RestoreReport:
        """Resume a paused session (a live one: ``state: preserved``, nothing done)."""
        self.known(session_id)
        self.settle(session_id)
        return self.resume_paused(session_id)

    def fork(
        self, session_id: str, request: ForkRequest, *, tenant: str = ADMIN_TENANT
    ) -> SessionInfo:
        """A new session of ``tenant`` from a checkpoint: the one named, else a fresh one of
        a live session, else the latest."""
        info = self.known(session_id)
        record: CheckpointRecord | None
        if request.checkpoint is not None:
            record = self.records.get(session_id, request.checkpoint, tenant=None)
        elif info.status in LIVE_SESSION_STATUSES:
            self.settle(session_id)
            record = self.take_now(session_id)
        else:
            record = self.records.latest(session_id, tenant=None)
        if record is None:
            which = request.checkpoint or "to fork from"
            raise NotFound(f"session {session_id[:64]!r} has no checkpoint {which}")
        fork_id = uuid.uuid4().hex
        self._start_from(record, fork_id, tenant, SessionStatus.LOST, forked=True)
        forked = self.manager.get(fork_id)
        assert forked is not None
        return forked

    # -- inside -------------------------------------------------------------------------
    def known(self, session_id: str) -> SessionInfo:
        """The session; `NotFound` when there is none."""
        info = self.manager.get(session_id)
        if info is None:
            raise NotFound(f"no session with id {session_id[:64]!r}")
        return info

    def take_now(self, session_id: str) -> CheckpointRecord:
        """A checkpoint of the live session, held for it (`SessionBusy` while a call runs)."""
        record = self.manager.hold(session_id, self.take)
        assert isinstance(record, CheckpointRecord)
        return record

    def take(self, session: Session) -> CheckpointRecord:
        """A checkpoint of ``session`` (held by the caller), stored on return."""
        return self.persist(session, self.stream(session))

    def stream(self, session: Session, *, wait: bool = True) -> tuple[int, float, Taken]:
        """The checkpoint out of the sandbox, not committed yet (`persist` commits it):
        (its seq, when it began, what was taken); without ``wait``, once its order is sent
        (`take_snapshot`). The sandbox writes one namespace at a time: this waits for the
        one before to be out, not for it to be stored, so the session's next cell never
        waits for a store's disk."""
        earlier = self._streaming.pop(session.id, None)
        if earlier is not None:
            earlier.streamed()
        try:
            seq = max(self.records.next_seq(session.id), self._seqs.get(session.id, 0) + 1)
            self._seqs[session.id] = seq
            started = time.monotonic()
            taken = take_snapshot(
                session,
                self.blobs,
                seq=seq,
                base=self._bases.get(session.id),
                max_bytes=self.settings.checkpoint_max_bytes,
                timeout_s=self.settings.checkpoint_timeout_s,
                wait=wait,
            )
        except BaseException:
            self.metrics.checkpoints.labels(outcome="failed").inc()
            raise
        self._streaming[session.id] = taken
        return seq, started, taken

    def persist(self, session: Session, streamed: tuple[int, float, Taken]) -> CheckpointRecord:
        """Commit the blobs of `stream`, then its signed record (the session may be in use)."""
        seq, started, taken = streamed
        tenant = self._tenant_of(session.id)
        committing = time.monotonic()
        try:
            try:
                snap = taken.commit(self._admit(session.id, tenant))
            except AiDataAgentError:
                self.metrics.checkpoints.labels(outcome="failed").inc()
                raise
            record = CheckpointRecord.of(
                snap,
                session_id=session.id,
                tenant=tenant,
                seq=seq,
                request=session.request,
                requirements=list(session.requirements),
                image=session.image,
                created_at=time.time(),
            )
            record = self.signer.sign(record)
            self.records.add(record)
            self.records.prune(session.id, keep=self.settings.checkpoints_kept)
        finally:
            if self._streaming.get(session.id) is taken:
                del self._streaming[session.id]
        with self._lock:  # a later checkpoint of the session may have been stored first
            base = self._bases.get(session.id)
            if base is None or base[0] < seq:
                self._bases[session.id] = record.base()
            session.checkpoint_seq = max(session.checkpoint_seq or 0, seq)
        self.metrics.checkpoints.labels(outcome="taken").inc()
        self.metrics.checkpoint_bytes.inc(snap.streamed_bytes)
        logger.bind(run_id=session.id).info(
            "checkpoint {}: {} kept, {} lost, {} bytes, {:.3f} s ({:.3f} s to capture it)",
            seq,
            len(snap.kept),
            len(snap.lost),
            record.size,
            time.monotonic() - started,
            committing - started,
        )
        return record

    def _admit(self, session_id: str, tenant: str) -> Callable[[dict[str, int]], None]:
        """The storage quota's check of a checkpoint's blobs: what its datasets and its
        checkpoints hold, and the blobs new beside the session's latest checkpoint, within
        the tenant's ``storage_bytes`` (`QuotaExceeded` otherwise: nothing is stored)."""

        def admit(blobs: dict[str, int]) -> None:
            datasets = self.manager.datasets
            limit = datasets.own_storage_quota(tenant) if datasets is not None else None
            if datasets is None or limit is None:
                return
            latest = self.records.latest(session_id, tenant=None)
            named = latest.blobs() if latest is not None else {}
            adding = sum(size for digest, size in blobs.items() if digest not in named)
            try:
                used = datasets.records.tenant_bytes(tenant) + self.records.usage(tenant)
                check_storage(limit, tenant, used=used, adding=adding)
            except QuotaExceeded as exc:
                self.metrics.observe_quota(exc, tenant)
                raise

        return admit

    def after_cell(self, session: Session) -> None:
        """The checkpoint that follows a cell, ordered by the cell's own call before it lets
        the session go, so the sandbox captures it before the next call's operation: the
        answer waits for the order's sending only (and, when the cell ended before the
        checkpoint before it was out, for that: the sandbox writes one at a time). The
        namespace streams out and is stored on a thread of its own."""
        log = logger.bind(run_id=session.id)
        try:
            streamed = self.stream(session, wait=False)
        except AiDataAgentError as exc:
            log.warning("no checkpoint after the cell: {}", exc)
            return

        def store() -> None:
            try:
                self.persist(session, streamed)
            except Exception as exc:  # its own thread: log, the next cell tries again
                log.warning("the checkpoint after the cell was not stored: {}", exc)

        threading.Thread(target=store, name=f"checkpoint-{session.id[:8]}", daemon=True).start()

    def settle(self, session_id: str) -> None:
        """Wait until the session's last checkpoint is out of its sandbox, if one is streaming."""
        streaming = self._streaming.get(session_id)
        if streaming is not None:
            streaming.streamed()

    def ready(self, session_id: str) -> None:
        """Before a call: the last cell's checkpoint done, and a paused session resumed."""
        self.settle(session_id)
        info = self.manager.get(session_id)
        if info is not None and info.status == SessionStatus.PAUSED:
            self.resume_paused(session_id)

    def resume_paused(self, session_id: str) -> RestoreReport:
        with self._lock:
            lock = self._resuming.setdefault(session_id, threading.Lock())
        with lock:  # one resume at a time; the others find it live
            info = self.manager.get(session_id)
            if info is None or info.status != SessionStatus.PAUSED:
                if info is None or info.status not in LIVE_SESSION_STATUSES:
                    status = info.status.value if info is not None else "unknown"
                    raise SessionGone(f"session {session_id} is {status}", session_id=session_id)
                return RestoreReport(session_id=session_id, state="preserved")
            record = self.records.latest(session_id, tenant=None)
            if record is None:
                self.end_paused(info, SessionStatus.LOST, "paused, but its checkpoint is gone")
                raise SessionGone(f"session {session_id} has no checkpoint", session_id=session_id)
            return self._start_from(
                record, session_id, info.tenant, SessionStatus.PAUSED, forked=False
            )

    def _start_from(
        self,
        record: CheckpointRecord,
        session_id: str,
        tenant: str,
        failed: SessionStatus,
        *,
        forked: bool,
    ) -> RestoreReport:
        """A session ``session_id`` of ``tenant`` started from ``record``: its files and
        namespace restored.

        Raises:
            CheckpointFailed: the record or a blob is not as signed (no container is left).
            SessionLimit, InstallFailed, ExecutorError: as for a new session.
        """
        self.signer.check(record)
        request = record.request.model_copy(update={"requirements": record.requirements})
        session = self.manager.executor.new_session(request, session_id=session_id)
        session.generation = record.generation
        reports: list[RestoreReport] = []

        def restore(started: Session) -> None:
            outcome = restore_snapshot(
                started, self.blobs, record.snapshot(), timeout_s=started.limits.timeout_s
            )
            started.execution_count = record.execution_count
            report = RestoreReport(
                session_id=started.id,
                checkpoint=record.seq,
                execution_count=record.execution_count,
                state="restored" if outcome.state == "restored" else "lost",
                restored=list(outcome.restored),
                lost=[*record.lost, *outcome.lost],
                error=outcome.error,
            )
            started.restore_report = started.restore_pending = report
            started.checkpoint_seq = None if forked else record.seq
            reports.append(report)

        self.manager.launch(session, tenant, restore, failed)
        self._bases.pop(session_id, None)
        report = reports[0]
        self.metrics.restores.labels(state=report.state).inc()
        self.metrics.restore_lost.inc(len(report.lost))
        return report

    def _tenant_of(self, session_id: str) -> str:
        info = self.manager.get(session_id)
        return info.tenant if info is not None else ADMIN_TENANT

    def end_paused(self, info: SessionInfo, status: SessionStatus, reason: str) -> None:
        """A paused session ends (closed, expired, lost): its record says so, its
        checkpoints go (their blobs with the next sweep)."""
        update = {"status": status, "error": reason, "idle_expires_at": None}
        self.manager.store.put(info.model_copy(update=update))
        self.records.delete_session(info.id)
        self.metrics.sessions_ended.labels(status=status.value).inc()
        self.forget(info.id)

    def forget(self, session_id: str) -> None:
        """A session that ended needs none of what was kept for its checkpoints."""
        for held in (self._resuming, self._bases):
            held.pop(session_id, None)
        self._seqs.pop(session_id, None)
        self._streaming.pop(session_id, None)


def _paused(info: SessionInfo, reason: str, seq: int) -> SessionInfo:
    update = {"status": SessionStatus.PAUSED, "error": reason, "checkpoint": seq}
    return info.model_copy(update=update | {"idle_expires_at": None})
