"""What a principal may see and do: its own tenant's things, or every tenant's for an admin.

    owned(principal, record.tenant, NotFound(f"no run with id {run_id!r}"))   # or raise it
    sessions = TenantSessions(node.sessions)
    info = sessions.create(principal, SessionRequest())     # the principal's tenant owns it
    sessions.submit_cell(principal, info.id, CellRequest(code="1 + 1"))   # NotFound if not its
    TenantCheckpoints(node.sessions, node.checkpoints).fork(principal, info.id, ForkRequest())

The rule is one: a tenant sees and acts only on what its tokens made, and
whatever it may not see does not exist for it (`NotFound`, 404, the answer
for an id that never existed, so that existence is not revealed); an admin
sees all. Listings are limited with `Principal.scope`. The routes and ``/mcp``
call only these operations (and `runs` for runs), so that every door applies
the rule, and what is added later (datasets, checkpoints) applies it the same
way with `owned`.
"""

from __future__ import annotations

from ai_data_agent.checkpoint_models import CheckpointInfo, ForkRequest, RestoreReport
from ai_data_agent.errors import NotFound
from ai_data_agent.limits import check_tenant_network
from ai_data_agent.service.cpu_usage import CpuAccount
from ai_data_agent.service.handles import CellHandle
from ai_data_agent.service.node import CheckpointService, SessionService
from ai_data_agent.service.quotas import quotas_of
from ai_data_agent.service.records import TenantRecords
from ai_data_agent.session_models import (
    CellRequest,
    CellResult,
    PackagesResult,
    SessionFile,
    SessionInfo,
    SessionRequest,
)
from ai_data_agent.tenant_models import Principal

__all__ = ["TenantCheckpoints", "TenantSessions", "owned"]


def owned(principal: Principal, owner: str | None, missing: NotFound) -> None:
    """Return when ``principal`` sees what ``owner`` made; else raise ``missing`` (also
    when there is no owner: nothing was found)."""
    if owner is None or not principal.sees(owner):
        raise missing


class TenantSessions:
    """`node.SessionService` as a principal may use it (blocking, like the service)."""

    def __init__(
        self,
        sessions: SessionService,
        tenants: TenantRecords | None = None,
        cpu: CpuAccount | None = None,
    ) -> None:
        self.service = sessions
        self.tenants = tenants  # whose own egress allow-lists a create is held to
        self.cpu = cpu  # with tenants: creates and cells are held to cpu_seconds_per_hour

    def create(self, principal: Principal, request: SessionRequest) -> SessionInfo:
        """A new session of the principal's tenant.

        Raises:
            EgressRefused: it asks for a host off the tenant's own egress allow-list.
            QuotaExceeded: the tenant used its ``cpu_seconds_per_hour`` (or as the service).
        """
        if self.tenants is not None:
            quotas = quotas_of(self.tenants, principal.tenant)
            if request.network:
                check_tenant_network(request.network, quotas.egress_allow, principal.tenant)
            if self.cpu is not None:
                self.cpu.admit(principal.tenant, quotas)
        return self.service.create(request, tenant=principal.tenant)

    def get(self, principal: Principal, session_id: str) -> SessionInfo:
        """The session, if the principal sees it.

        Raises:
            NotFound: no such session, or another tenant's.
        """
        info = self.service.get(session_id)
        owned(
            principal,
            None if info is None else info.tenant,
            NotFound(f"no session with id {session_id[:64]!r}"),
        )
        assert info is not None
        return info

    def sessions(self, principal: Principal, tenant: str | None = None) -> list[SessionInfo]:
        """Live sessions first, then the newest: the principal's own, or (an admin) every
        tenant's or ``tenant``'s."""
        return self.service.sessions(tenant=principal.scope(tenant))

    def close(self, principal: Principal, session_id: str) -> SessionInfo:
        self.get(principal, session_id)
        info = self.service.close(session_id)
        return info if info is not None else self.get(principal, session_id)

    def submit_cell(
        self, principal: Principal, session_id: str, request: CellRequest
    ) -> CellHandle:
        """Start a cell of the principal's (or, an admin, any) session.

        Raises:
            NotFound: no such session, or another tenant's.
            QuotaExceeded: the session's tenant used its ``cpu_seconds_per_hour``.
        """
        info = self.get(principal, session_id)
        if self.tenants is not None and self.cpu is not None:
            self.cpu.admit(info.tenant, quotas_of(self.tenants, info.tenant))
        return self.service.submit_cell(session_id, request)

    def cell(self, principal: Principal, session_id: str, count: int) -> CellHandle | CellResult:
        """The running cell's handle or a finished cell's result.

        Raises:
            NotFound: no such session (or another tenant's), or no such cell.
        """
        self.get(principal, session_id)
        found = self.service.cell(session_id, count)
        if found is None:
            raise NotFound(f"session {session_id[:64]!r} has no cell {count}")
        return found

    def interrupt(self, principal: Principal, session_id: str) -> bool:
        self.get(principal, session_id)
        return self.service.interrupt(session_id)

    def restart(self, principal: Principal, session_id: str) -> SessionInfo:
        self.get(principal, session_id)
        return self.service.restart(session_id)

    def install(
        self, principal: Principal, session_id: str, requirements: list[str]
    ) -> PackagesResult:
        self.get(principal, session_id)
        return self.service.install(session_id, requirements)

    def upload(self, principal: Principal, session_id: str, path: str, data: bytes) -> str:
        self.get(principal, session_id)
        return self.service.upload(session_id, path, data)

    def download(self, principal: Principal, session_id: str, path: str) -> bytes:
        self.get(principal, session_id)
        return self.service.download(session_id, path)

    def files(self, principal: Principal, session_id: str) -> list[SessionFile]:
        self.get(principal, session_id)
        return self.service.files(session_id)


class TenantCheckpoints:
    """`node.CheckpointService` as a principal may use it: a session's checkpoints are its
    tenant's (another's session is `NotFound`, its checkpoints with it), and a fork is
    the caller's tenant's."""

    def __init__(self, sessions: SessionService, checkpoints: CheckpointService) -> None:
        self.sessions = TenantSessions(sessions)
        self.service = checkpoints

    def checkpoint(self, principal: Principal, session_id: str) -> CheckpointInfo:
        self.sessions.get(principal, session_id)
        return self.service.checkpoint(session_id)

    def checkpoints(self, principal: Principal, session_id: str) -> list[CheckpointInfo]:
        self.sessions.get(principal, session_id)
        return self.service.checkpoints(session_id)

    def pause(self, principal: Principal, session_id: str) -> SessionInfo:
        self.sessions.get(principal, session_id)
        return self.service.pause(session_id)

    def resume(self, principal: Principal, session_id: str) -> RestoreReport:
        self.sessions.get(principal, session_id)
        return self.service.resume(session_id)

    def fork(self, principal: Principal, session_id: str, request: ForkRequest) -> SessionInfo:
        self.sessions.get(principal, session_id)
        return self.service.fork(session_id, request, tenant=principal.tenant)
