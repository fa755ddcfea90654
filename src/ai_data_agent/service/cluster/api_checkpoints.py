"""An API node's checkpoints: calls for the worker that holds a session, records from the database.

    checkpoints = ClusterCheckpoints(settings, sessions, db)
    checkpoints.pause(sid)            # a call for its worker: checkpoint, then its container goes
    checkpoints.resume(sid)           # any worker with room resumes it: the session's pin moves
    checkpoints.housekeeping()        # old checkpoints pruned, long-paused sessions expired

`node.CheckpointService` over the database. A checkpoint is taken on the
worker that holds the session (`cluster.worker_sessions`, `kept_sessions`);
a paused session, whether paused by its worker or by the death of that
worker (`pg_workers`), belongs to no worker until one resumes it. Blobs are
the cluster's; the records and the key that signs them are in the database
(`pg_checkpoints`).
"""

from __future__ import annotations

from loguru import logger

from ai_data_agent.checkpoint_models import CheckpointInfo, ForkRequest, RestoreReport
from ai_data_agent.errors import NotFound, SessionGone
from ai_data_agent.service.cluster.api_sessions import ClusterSessions
from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.cluster.pg_checkpoints import PgCheckpointStore, cluster_key
from ai_data_agent.session_models import LIVE_SESSION_STATUSES, SessionInfo, SessionStatus
from ai_data_agent.settings import Settings
from ai_data_agent.storage import BlobStore
from ai_data_agent.tenant_models import ADMIN_TENANT

__all__ = ["ClusterCheckpoints"]


class ClusterCheckpoints:
    def __init__(
        self, settings: Settings, sessions: ClusterSessions, db: Database, blobs: BlobStore
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.db = db
        self.records = PgCheckpointStore(db, prunes=True)
        self.blobs = blobs

    def start(self) -> None:
        """Make the cluster's key, once (workers read it)."""
        cluster_key(self.db, create=True)

    def _known(self, session_id: str) -> SessionInfo:
        info = self.sessions.get(session_id)
        if info is None:
            raise NotFound(f"no session with id {session_id[:64]!r}")
        return info

    def checkpoint(self, session_id: str) -> CheckpointInfo:
        info = self._known(session_id)
        if info.status == SessionStatus.PAUSED:
            record = self.records.latest(session_id, tenant=None)
            if record is not None:
                return record.info()
        call = self.sessions.route("checkpoint", session_id)
        return CheckpointInfo.model_validate_json(call.result or "")

    def checkpoints(self, session_id: str) -> list[CheckpointInfo]:
        self._known(session_id)
        return [r.info() for r in self.records.history(session_id, tenant=None)]

    def pause(self, session_id: str) -> SessionInfo:
        info = self._known(session_id)
        if info.status == SessionStatus.PAUSED:
            return info
        return SessionInfo.model_validate_json(
            self.sessions.route("pause", session_id).result or ""
        )

    def resume(self, session_id: str) -> RestoreReport:
        info = self._known(session_id)
        if info.status in LIVE_SESSION_STATUSES:
            return RestoreReport(session_id=session_id, state="preserved")
        if info.status != SessionStatus.PAUSED:
            raise SessionGone(f"session {session_id} is {info.status.value}", session_id=session_id)
        return self.sessions.resume_anywhere(session_id)

    def fork(
        self, session_id: str, request: ForkRequest, *, tenant: str = ADMIN_TENANT
    ) -> SessionInfo:
        """On the session's worker when it is live (a checkpoint of it now), else anywhere;
        the new session is ``tenant``'s."""
        info = self._known(session_id)
        args = request.model_dump_json()
        if info.status in LIVE_SESSION_STATUSES:
            call = self.sessions.route("fork", session_id, args=args, tenant=tenant)
        else:
            call = self.sessions.anywhere("fork", session_id, args, tenant)
        return SessionInfo.model_validate_json(call.result or "")

    def housekeeping(self) -> None:
        """Checkpoints beyond the newest few go; sessions paused past their retention expire
        (their checkpoints with them). The blob store's one sweep (the datasets' keeper) spares
        what checkpoints name."""
        s = self.settings
        self.records.prune_all(keep=s.checkpoints_kept)
        expired = self.sessions.registry.expire_paused(
            older_than_s=s.session_paused_retention_s, reason="paused past its retention"
        )
        if expired:
            logger.info("{} paused session(s) expired", len(expired))
