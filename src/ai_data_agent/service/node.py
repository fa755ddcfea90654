"""The contracts of a node, one or many: what the routes need of it, and what it needs of an executor.

    node: ServiceNode = Daemon(settings, executor)          # one node: SQLite, admits and executes
    node: ServiceNode = ClusterNode(settings, executor)     # PostgreSQL: admits, maybe executes

The routes (``app``, ``session_routes``) and ``/mcp`` see only these protocols,
so the two kinds of node answer the same API with the same shapes and errors;
both sides execute runs through the same `RunExecutor` and end them with the
same reasons. Nothing here knows SQLite or PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from ai_data_agent.checkpoint_models import CheckpointInfo, ForkRequest, RestoreReport
from ai_data_agent.checks import Check
from ai_data_agent.dataset_models import DatasetVersion
from ai_data_agent.egress.proxy import EgressProxy
from ai_data_agent.executor import Backend, EnvCache, EventHandler, Session, WarmPool
from ai_data_agent.executor.data import EngineDatasets
from ai_data_agent.models import Limits, RunRequest, RunResult
from ai_data_agent.service.audit import AuditLog
from ai_data_agent.service.auth import TokenAuth
from ai_data_agent.service.cpu_usage import CpuAccount
from ai_data_agent.service.datasets.service import DatasetService
from ai_data_agent.service.handles import CellHandle, RunHandle
from ai_data_agent.service.metrics import ServiceMetrics
from ai_data_agent.service.records import RunRecords, TenantRecords
from ai_data_agent.session_models import (
    CellRequest,
    CellResult,
    PackagesResult,
    SessionFile,
    SessionInfo,
    SessionRequest,
)
from ai_data_agent.settings import Settings
from ai_data_agent.storage import BlobStore
from ai_data_agent.tenant_models import ADMIN_TENANT

__all__ = [
    "CANCEL_WAIT_S",
    "REASON_CANCELLED_QUEUED",
    "REASON_SHUTDOWN_QUEUED",
    "REASON_SHUTDOWN_RUNNING",
    "RUN_RETRY_AFTER_S",
    "SESSION_RETRY_AFTER_S",
    "STOP_SLACK_S",
    "ArtifactBody",
    "CheckpointService",
    "RunDispatcher",
    "RunExecutor",
    "ServiceNode",
    "SessionService",
]

# What a full queue suggests: a run takes seconds, a slot frees as fast.
RUN_RETRY_AFTER_S = 5.0
# What a full house of sessions suggests: a slot frees when a session closes or expires.
SESSION_RETRY_AFTER_S = 30.0
# How long a cancel is waited for: the sandbox is killed and removed within this.
CANCEL_WAIT_S = 60.0
# After the grace period, stopped runs get this long to be killed and removed
# (the executor notices a cancel within 0.25 s; kill, wait and remove are bounded).
STOP_SLACK_S = 30.0
REASON_SHUTDOWN_QUEUED = "the controller shut down before the run started"
REASON_SHUTDOWN_RUNNING = "the controller shut down; the run was stopped after the grace period"
REASON_CANCELLED_QUEUED = "cancelled by request before it started"

ArtifactBody = Path | Iterator[bytes]


class RunExecutor(Protocol):
    """What a node needs of an `Executor` (unit tests pass a fake one)."""

    @property
    def controller_id(self) -> str: ...

    @property
    def backend(self) -> Backend: ...

    @property
    def env_cache(self) -> EnvCache | None: ...

    @property
    def datasets(self) -> EngineDatasets | None:
        """Dataset versions on its engine (a node connects its store), or None."""

    @property
    def pool(self) -> WarmPool | None: ...

    @property
    def egress(self) -> EgressProxy | None:
        """The egress proxy of runs and sessions with an allow-list; None: egress is off."""

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

    def new_session(self, request: SessionRequest, session_id: str | None = None) -> Session:
        """A session of this executor, not started yet (`Session.start`)."""

    def start_pool(self) -> None: ...

    def close(self) -> None: ...


class RunDispatcher(Protocol):
    """Admission and the handles of active runs (blocking methods: call them in threads).

    Its methods raise only errors of the tree (`QueueFull`, `NotReady` when the
    store cannot be reached), never a database's own.
    """

    @property
    def accepting(self) -> bool: ...

    @property
    def in_flight(self) -> int:
        """Runs a drain waits for before the node stops listening."""

    def submit(
        self, request: RunRequest, limits: Limits, *, tenant: str = ADMIN_TENANT
    ) -> RunHandle:
        """Record and queue ``request`` as ``tenant``'s; raises `QueueFull` (`QuotaExceeded`
        beyond the tenant's quotas) or `NotReady`."""

    def find(self, run_id: str) -> RunHandle | None:
        """The handle of an active run (its live events and completion), or None."""

    def cancel(self, run_id: str) -> RunHandle | None:
        """Cancel an active run; its handle to wait on, or None when it is not active."""

    def check_execution(self, run_id: str) -> None:
        """Raise `NoWorker` when nothing can execute ``run_id`` now (a cluster without a
        live worker, the run still queued); a node that executes its own runs never does."""


class SessionService(Protocol):
    """The sessions API's operations (all blocking; a cell's handle is waited on), for
    every tenant: `ownership.TenantSessions` is what a principal may do with them."""

    def create(self, request: SessionRequest, *, tenant: str = ADMIN_TENANT) -> SessionInfo: ...

    def get(self, session_id: str) -> SessionInfo | None: ...

    def sessions(self, *, tenant: str | None = None) -> list[SessionInfo]: ...

    def close(self, session_id: str) -> SessionInfo | None: ...

    def submit_cell(self, session_id: str, request: CellRequest) -> CellHandle: ...

    def cell(self, session_id: str, count: int) -> CellHandle | CellResult | None: ...

    def cell_code(self, session_id: str, count: int) -> str | None:
        """The code of a finished cell, where its record keeps it."""

    def interrupt(self, session_id: str) -> bool: ...

    def restart(self, session_id: str) -> SessionInfo: ...

    def install(self, session_id: str, requirements: list[str]) -> PackagesResult: ...

    def upload(self, session_id: str, path: str, data: bytes) -> str: ...

    def download(self, session_id: str, path: str) -> bytes: ...

    def files(self, session_id: str) -> list[SessionFile]: ...

    def promote(self, session_id: str, tenant: str, name: str, paths: list[str]) -> DatasetVersion:
        """Files of the session as the next version of ``tenant``'s dataset ``name``."""


class CheckpointService(Protocol):
    """The checkpoints API's operations (blocking), for every tenant:
    `ownership.TenantCheckpoints` is what a principal may do with them."""

    def checkpoint(self, session_id: str) -> CheckpointInfo: ...

    def checkpoints(self, session_id: str) -> list[CheckpointInfo]: ...

    def pause(self, session_id: str) -> SessionInfo: ...

    def resume(self, session_id: str) -> RestoreReport: ...

    def fork(
        self, session_id: str, request: ForkRequest, *, tenant: str = ADMIN_TENANT
    ) -> SessionInfo:
        """A new session of ``tenant`` (the caller's) from one of ``session_id``'s
        checkpoints."""


class ServiceNode(Protocol):
    """A node as the routes and ``/mcp`` see it: its stores, dispatcher and sessions (for
    every tenant: the routes go through `runs` and `ownership.TenantSessions`), the tokens
    (`auth`, over `tenants`) and the audit log every door writes to."""

    settings: Settings
    auth: TokenAuth
    metrics: ServiceMetrics
    cpu: CpuAccount  # tenants' CPU time: charged as runs and cells end, checked at the doors
    blobs: BlobStore  # datasets and checkpoints: data_dir's or the cluster's shared storage
    started: bool
    startup_error: Exception | None

    @property
    def store(self) -> RunRecords: ...

    @property
    def tenants(self) -> TenantRecords: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def dispatcher(self) -> RunDispatcher: ...

    @property
    def sessions(self) -> SessionService: ...

    @property
    def datasets(self) -> DatasetService: ...

    @property
    def checkpoints(self) -> CheckpointService: ...

    def start(self) -> None: ...

    def begin_shutdown(self) -> None: ...

    def stop(self) -> None: ...

    def probes(self) -> dict[str, Callable[[], Check]]:
        """Readiness checks that may block (run in threads, with a timeout), by name."""

    def instant_checks(self) -> list[Check]:
        """Readiness checks that answer at once (prewarm progress, the warm pool, accepting)."""

    def details(self) -> list[Check]:
        """What an operator sees beside readiness (the console's health page: cached
        environments, a cluster's workers), never part of ``/readyz``.
        Blocking."""

    def artifact_body(self, run_id: str, path: str) -> ArtifactBody | None:
        """A listed artifact's bytes (a checked file, or chunks); None when absent."""
