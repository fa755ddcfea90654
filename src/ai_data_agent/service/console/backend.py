"""The console's one view of the node behind it, through the protocols the HTTP routes use.

    backend = Backend(node)              # a `Daemon`, or a cluster's API node
    records, total = await backend.runs(principal, status="failed", tenant=None,
                                        since=None, limit=50, offset=0)
    events = await backend.run_events(principal, run_id)   # live events, or None once ended

Each run, session and dataset call takes the viewer's `Principal` and goes
through the same ownership rule as the API (`runs`, `ownership.TenantSessions`,
`ownership.TenantCheckpoints`, a dataset named within its tenant): an agent
tenant sees only its own, anything else is `NotFound`. Every other console module reaches the node through this one, so one implementation
serves one node and a cluster's API node alike, and a change of the node's protocols
touches one file. Blocking calls run in worker threads; readiness probes run with a
timeout, as ``/readyz`` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

from ai_data_agent.api_models import RunRecord, ServerInfo
from ai_data_agent.checkpoint_models import RestoreReport
from ai_data_agent.checks import Check
from ai_data_agent.dataset_models import (
    DatasetDescription,
    DatasetFile,
    DatasetInfo,
    DatasetPage,
    DatasetVersion,
)
from ai_data_agent.errors import NotFound
from ai_data_agent.models import Artifact
from ai_data_agent.service import runs
from ai_data_agent.service.auth import TokenAuth
from ai_data_agent.service.datasets.describe import describe
from ai_data_agent.service.events import RunEvents, sse_line
from ai_data_agent.service.handles import CellHandle
from ai_data_agent.service.health import accepting, node_checks, timed
from ai_data_agent.service.info import server_info
from ai_data_agent.service.node import ArtifactBody, ServiceNode
from ai_data_agent.service.ownership import TenantCheckpoints, TenantSessions
from ai_data_agent.service.records import AuditQuery
from ai_data_agent.service.tenant_admin import TenantAdmin
from ai_data_agent.session_models import (
    LIVE_SESSION_STATUSES,
    CellResult,
    SessionInfo,
    SessionStatus,
)
from ai_data_agent.settings import Settings
from ai_data_agent.tenant_models import (
    AuditEntry,
    NewToken,
    Principal,
    Tenant,
    TokenCreate,
    TokenInfo,
)

__all__ = [
    "ArtifactBody",
    "Backend",
    "Cell",
    "CodedCell",
    "NodeProtocol",
    "RunEvents",
    "TenantUsage",
    "sse_line",
]

PROBE_THREADS = 3  # the console's readiness probes in flight at once
MAX_CELLS = 100  # the newest cells a session's page shows
GAUGES = {
    "queued": "ai_data_agent_queue_depth",
    "running": "ai_data_agent_runs_running",
    "sessions": "ai_data_agent_sessions_active",
}

Cell = CellResult | CellHandle
CodedCell = tuple[Cell, str | None]  # a cell and its code, where it is known
LIVE = LIVE_SESSION_STATUSES


@dataclass(frozen=True)
class TenantUsage:
    """A tenant and what it uses now (its quotas are in ``tenant.quotas``)."""

    tenant: Tenant
    running: int
    queued: int
    sessions: int


NodeProtocol = ServiceNode  # what the console is built on (`console_app`)


def _owner(principal: Principal, tenant: str | None) -> str:
    """Whose dataset a request names: the principal's tenant's, or an admin's pick."""
    return principal.scope(tenant) or principal.tenant


async def _thread(function: Callable[..., Any], *args: Any) -> Any:
    return await anyio.to_thread.run_sync(function, *args)


class Backend:
    """What the console reads and does, over one `ServiceNode`."""

    def __init__(self, node: ServiceNode) -> None:
        self._node = node
        self._sessions = TenantSessions(node.sessions)
        self._checkpoints = TenantCheckpoints(node.sessions, node.checkpoints)
        self._admin = TenantAdmin(node.tenants)
        self._limiter = anyio.CapacityLimiter(PROBE_THREADS)

    @property
    def settings(self) -> Settings:
        return self._node.settings

    # -- tokens -----------------------------------------------------------------------
    @property
    def auth(self) -> TokenAuth:
        return self._node.auth

    # -- runs (the principal's: another tenant's is `NotFound`, as in the API) -----------
    async def runs(
        self,
        principal: Principal,
        *,
        status: str | None,
        tenant: str | None,
        since: float | None,
        limit: int,
        offset: int,
    ) -> tuple[list[RunRecord], int]:
        return await runs.page(
            self._node,
            principal,
            status=status,
            tenant=tenant,
            since=since,
            limit=limit,
            offset=offset,
        )

    async def run(self, principal: Principal, run_id: str) -> RunRecord:
        """A run's record.

        Raises:
            NotFound: no such run, or another tenant's.
        """
        return await runs.record_or_404(self._node, principal, run_id)

    async def cancel(self, principal: Principal, run_id: str) -> None:
        """Cancel an active run and wait (a bounded time) for it to end, as the API does."""
        await runs.cancel(self._node, principal, run_id)

    async def run_events(self, principal: Principal, run_id: str) -> RunEvents | None:
        """An active run's events (from its first), or None once it has ended.

        Raises:
            NotFound: no such run, or another tenant's.
        """
        handle, _ = await runs.events_of(self._node, principal, run_id)
        return None if handle is None else handle.events

    async def artifact(
        self, principal: Principal, run_id: str, path: str
    ) -> tuple[Artifact, ArtifactBody]:
        """A listed artifact of a run and its bytes.

        Raises:
            NotFound: no such run, another tenant's, or it lists no such artifact (or its
                bytes are gone).
        """
        return await runs.listed_artifact(self._node, principal, run_id, path)

    # -- sessions (the principal's, as runs) ----------------------------------------------
    async def sessions(self, principal: Principal, tenant: str | None) -> list[SessionInfo]:
        found: list[SessionInfo] = await _thread(self._sessions.sessions, principal, tenant)
        return found

    async def session(self, principal: Principal, session_id: str) -> SessionInfo | None:
        try:
            info: SessionInfo = await _thread(self._sessions.get, principal, session_id)
        except NotFound:
            return None
        return info

    async def cell(self, principal: Principal, session_id: str, count: int) -> Cell | None:
        try:
            found: Cell = await _thread(self._sessions.cell, principal, session_id, count)
        except NotFound:
            return None
        return found

    async def cells(self, principal: Principal, info: SessionInfo) -> list[CodedCell]:
        """The session's newest cells in order, a running one last, each with its code
        (None where the record has none); cells the store no longer has are left out."""
        last = info.execution_count + (1 if info.status is SessionStatus.BUSY else 0)
        first = max(1, last - MAX_CELLS + 1)
        found = await _thread(self._coded_cells, principal, info.id, range(first, last + 1))
        return list(found)

    def _coded_cells(self, principal: Principal, session_id: str, counts: range) -> list[CodedCell]:
        found = []
        for count in counts:
            try:
                cell = self._sessions.cell(principal, session_id, count)
            except NotFound:
                continue
            code = (
                cell.code
                if isinstance(cell, CellHandle)
                else self._node.sessions.cell_code(session_id, count)
            )
            found.append((cell, code))
        return found

    async def interrupt(self, principal: Principal, session_id: str) -> bool:
        interrupted: bool = await _thread(self._sessions.interrupt, principal, session_id)
        return interrupted

    async def restart(self, principal: Principal, session_id: str) -> None:
        await _thread(self._sessions.restart, principal, session_id)

    async def close(self, principal: Principal, session_id: str) -> None:
        await _thread(self._sessions.close, principal, session_id)

    async def pause(self, principal: Principal, session_id: str) -> SessionInfo:
        """Checkpoint a live session, then remove its container (as ``POST .../pause``)."""
        paused: SessionInfo = await _thread(self._checkpoints.pause, principal, session_id)
        return paused

    async def resume(self, principal: Principal, session_id: str) -> RestoreReport:
        """A paused session in a fresh container, its state restored (as ``POST .../resume``)."""
        report: RestoreReport = await _thread(self._checkpoints.resume, principal, session_id)
        return report

    # -- datasets (the principal's tenant's; an admin names another with ``tenant``) -------
    async def datasets(self, principal: Principal, tenant: str | None) -> DatasetPage:
        """The principal's tenant's datasets; an admin's: ``tenant``'s, or every tenant's."""
        found: DatasetPage = await _thread(self._node.datasets.page, principal.scope(tenant))
        return found

    async def dataset(self, principal: Principal, tenant: str | None, name: str) -> DatasetInfo:
        """Raises: NotFound: no such dataset of the tenant (another tenant's included)."""
        found: DatasetInfo = await _thread(
            self._node.datasets.dataset, _owner(principal, tenant), name
        )
        return found

    async def dataset_version(
        self, principal: Principal, tenant: str | None, name: str, version: int
    ) -> DatasetVersion:
        """A version with its files. Raises: NotFound: no such dataset or version."""
        owner = _owner(principal, tenant)
        found: DatasetVersion = await _thread(self._node.datasets.version, owner, name, version)
        return found

    async def dataset_file(
        self, principal: Principal, tenant: str | None, name: str, version: int, path: str
    ) -> tuple[DatasetFile, ArtifactBody]:
        """A file of a version and its bytes. Raises: NotFound: no such version or file."""
        owner = _owner(principal, tenant)
        found: tuple[DatasetFile, ArtifactBody] = await _thread(
            self._node.datasets.file, owner, name, version, path
        )
        return found

    async def describe(
        self, principal: Principal, tenant: str | None, name: str, version: int
    ) -> DatasetDescription:
        """The version's description, as ``GET .../describe``: cached, else computed now by a
        run of the owning tenant (seconds).

        Raises:
            NotFound: no such dataset or version.
            ServerError: the describe run failed.
        """
        return await describe(self._node, _owner(principal, tenant), name, version)

    # -- tenants and tokens (an admin's page) -------------------------------------------
    async def tenants(self) -> list[TenantUsage]:
        """Every tenant with what it uses now: runs running and queued, live sessions."""
        found: list[TenantUsage] = await _thread(self._tenant_usage)
        return found

    def _tenant_usage(self) -> list[TenantUsage]:
        live = [s.tenant for s in self._node.sessions.sessions() if s.status in LIVE]
        found = []
        for tenant in self._admin.tenants():
            counts = {
                status: self._node.store.list(status=status, tenant=tenant.name, limit=1)[1]
                for status in ("running", "queued")
            }
            found.append(
                TenantUsage(tenant, counts["running"], counts["queued"], live.count(tenant.name))
            )
        return found

    async def tokens(self) -> list[TokenInfo]:
        found: list[TokenInfo] = await _thread(self._admin.tokens)
        return found

    async def new_token(self, create: TokenCreate) -> NewToken:
        """A new token of an existing tenant; its secret is in this answer only.

        Raises:
            NotFound: no such tenant.
            Conflict: a token of that name exists.
        """
        await _thread(self._admin.tenant, create.tenant)
        made: NewToken = await _thread(self._admin.new_token, create)
        return made

    async def revoke(self, name: str) -> None:
        """Raises: NotFound: no token of that name."""
        await _thread(self._admin.revoke, name)

    # -- the audit log (an admin's page) ----------------------------------------------
    async def audit(self, query: AuditQuery) -> list[AuditEntry]:
        found: list[AuditEntry] = await _thread(self._node.audit.query, query)
        return found

    # -- health -----------------------------------------------------------------------
    def info(self) -> ServerInfo:
        return server_info(self._node.settings)

    async def checks(self) -> list[Check]:
        """The readiness checks of ``/readyz``, each within its timeout, by name."""
        found = await node_checks(self._node, self._limiter, *accepting(self._node))
        return sorted(found.values(), key=lambda check: check.name)

    async def details(self) -> list[Check]:
        """Cached environments, or a cluster's workers: what readiness does not judge."""
        return await timed("details", self._node.details, self._limiter)

    def gauges(self) -> dict[str, float | None]:
        """Queue depth, runs running and live sessions, as ``/metrics`` reports them."""
        registry = self._node.metrics.registry
        return {key: registry.get_sample_value(name) for key, name in GAUGES.items()}

    def in_flight(self) -> int:
        return self._node.dispatcher.in_flight
