"""The `SandboxService` of the daemon's ``/mcp``: its node's dispatcher, run store and sessions.

    sandbox = DaemonSandbox(app.state.daemon)     # one node, or a cluster's API node

A run through MCP is admitted, queued, recorded and counted exactly as a
``POST /v1/runs``, through the same `service.runs` (it shows in ``GET
/v1/runs``, its artifacts under ``/v1/runs/{id}/artifacts``), and a session through MCP is a session of the
HTTP API (``/v1/sessions/{id}``), under the same limits. Live output comes
from the same event logs that feed the SSE routes. Every call acts as the
request's `Principal` (`CALLER`, set by the ``/mcp`` guard before the SDK
runs), through the same operations as the routes (`runs`,
`ownership.TenantSessions`): another tenant's run or session does not exist
for it. Each call that acts on a run or a session adds its entry to the audit
log (``mcp.<action>``), beside the HTTP request's own ``mcp`` entry.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, TypeVar

import anyio
from anyio.to_thread import run_sync

from ai_data_agent.checkpoint_models import ForkRequest
from ai_data_agent.dataset_models import DatasetDescription, DatasetPage
from ai_data_agent.errors import AiDataAgentError, ServerError, Unauthorized
from ai_data_agent.mcp.sandbox import Capabilities, OutputSink, ToolJob
from ai_data_agent.models import RunRequest, RunResult
from ai_data_agent.service import runs
from ai_data_agent.service.datasets.describe import describe
from ai_data_agent.service.datasets.routes import pin_session
from ai_data_agent.service.events import RunEvents
from ai_data_agent.service.handles import CellHandle, Completion, RunHandle, wait_done
from ai_data_agent.service.node import ServiceNode
from ai_data_agent.service.ownership import TenantCheckpoints, TenantSessions
from ai_data_agent.session_models import (
    CellRequest,
    CellResult,
    PackagesResult,
    SessionFile,
    SessionInfo,
    SessionRequest,
)
from ai_data_agent.tenant_models import AuditEntry, Principal

__all__ = ["CALLER", "DaemonSandbox"]

H = TypeVar("H", bound=Completion)
T = TypeVar("T")
# The principal of the /mcp request being served (set by the HTTP guard).
CALLER: ContextVar[Principal] = ContextVar("mcp_caller")


def _caller() -> Principal:
    try:
        return CALLER.get()
    except LookupError:  # only the guarded route runs the tools
        raise Unauthorized("no principal for this MCP call") from None


async def _pump(events: RunEvents, on_output: OutputSink) -> None:
    """Feed ``stdout``/``stderr`` events to ``on_output`` until the log closes."""
    async for name, data in events.follow():
        if name in ("stdout", "stderr"):
            on_output(name, str(json.loads(data).get("data", "")))


class _Followed(Generic[H]):
    """A run or cell of the node, as an MCP `ToolJob`: its output fed to ``on_output``."""

    def __init__(self, node: ServiceNode, handle: H, on_output: OutputSink) -> None:
        self._node = node
        self._handle = handle
        self._on_output = on_output

    async def _ended(self) -> None:
        await wait_done(self._handle)

    async def _done(self) -> H:
        failure: Exception | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(_pump, self._handle.events, self._on_output)
            try:
                await self._ended()
            except Exception as exc:  # raised below, not as an exception group
                failure = exc
                group.cancel_scope.cancel()
        if failure is not None:
            raise failure
        return self._handle


class _RunJob(_Followed[RunHandle]):
    async def _ended(self) -> None:
        await runs.wait_executed(self._node, self._handle)  # NoWorker: nothing can run it

    async def wait(self) -> RunResult:
        return await runs.final_result(self._node, await self._done())

    async def cancel(self) -> None:
        await runs.cancel(self._node, _caller(), self._handle.id)


class _CellJob(_Followed[CellHandle]):
    async def wait(self) -> CellResult:
        handle = await self._done()
        if handle.error is not None:
            raise handle.error
        if handle.result is None:
            raise ServerError("the cell ended without a result")
        return handle.result

    async def cancel(self) -> None:
        owned = TenantSessions(self._node.sessions)
        await run_sync(owned.interrupt, _caller(), self._handle.session_id)


class DaemonSandbox:
    """See the module docstring."""

    def __init__(self, node: ServiceNode) -> None:
        self.node = node
        s = node.settings
        self.capabilities = Capabilities(
            allow_network=s.allow_network,
            sessions=s.max_sessions > 0,
            max_timeout_s=s.max_timeout_s,
            interrupt_grace_s=s.interrupt_grace_s,
        )

    async def _audited(
        self, action: str, object_id: str | None, call: Callable[[], Awaitable[T]]
    ) -> T:
        """``call()``, with its audit entry (the error's status and code when refused)."""
        principal = _caller()
        status, code, found = 200, None, object_id
        try:
            result = await call()
        except Exception as exc:  # a refusal: its status and code; anything else: 500
            known = exc if isinstance(exc, AiDataAgentError) else None
            status = (known.http_status if known else None) or 500
            code = (known.code if known else None) or "internal"
            raise
        else:
            found = object_id or getattr(result, "id", None)
            return result
        finally:
            entry = AuditEntry(
                at=datetime.now(UTC),
                tenant=principal.tenant,
                token=principal.token,
                action=f"mcp.{action}",
                object_id=found,
                status=status,
                code=code,
            )
            await self.node.audit.record(entry)

    async def start_run(self, request: RunRequest, on_output: OutputSink) -> ToolJob[RunResult]:
        handle = await self._audited(  # refused: nothing recorded
            "run.create", None, lambda: runs.admit(self.node, _caller(), request)
        )
        return _RunJob(self.node, handle, on_output)

    async def artifact(self, run_id: str, path: str) -> bytes:
        """Only files the run's result lists, from the run's own folder (as the HTTP route)."""
        _, body = await self._audited(
            "run.download",
            f"{run_id}/{path}",
            lambda: runs.listed_artifact(self.node, _caller(), run_id, path),
        )
        if isinstance(body, Path):
            return await run_sync(body.read_bytes)
        return await run_sync(b"".join, body)

    async def _session(
        self,
        action: str,
        session_id: str | None,
        call: Callable[[TenantSessions, Principal], T],
    ) -> T:
        """``call`` on the node's sessions as the caller, in a thread, audited."""
        owned = TenantSessions(self.node.sessions, self.node.tenants, self.node.cpu)
        principal = _caller()
        return await self._audited(
            f"session.{action}", session_id, lambda: run_sync(call, owned, principal)
        )

    async def create_session(self, request: SessionRequest) -> SessionInfo:
        return await self._session(
            "create", None, lambda s, p: s.create(p, pin_session(self.node, p.tenant, request))
        )

    async def start_cell(
        self, session_id: str, code: str, timeout_s: float | None, on_output: OutputSink
    ) -> ToolJob[CellResult]:
        request = CellRequest(code=code, timeout_s=timeout_s)
        handle = await self._session(
            "cell", session_id, lambda s, p: s.submit_cell(p, session_id, request)
        )
        return _CellJob(self.node, handle, on_output)

    async def install(self, session_id: str, requirements: list[str]) -> PackagesResult:
        return await self._session(
            "packages", session_id, lambda s, p: s.install(p, session_id, requirements)
        )

    async def upload(self, session_id: str, path: str, data: bytes) -> str:
        return await self._session(
            "upload", f"{session_id}/{path}", lambda s, p: s.upload(p, session_id, path, data)
        )

    async def files(self, session_id: str) -> list[SessionFile]:
        return await self._session("files", session_id, lambda s, p: s.files(p, session_id))

    async def download(self, session_id: str, path: str) -> bytes:
        return await self._session(
            "download", f"{session_id}/{path}", lambda s, p: s.download(p, session_id, path)
        )

    async def restart(self, session_id: str) -> SessionInfo:
        return await self._session("restart", session_id, lambda s, p: s.restart(p, session_id))

    async def fork(self, session_id: str) -> SessionInfo:
        """A new session of the caller's from the session's state (audited as its new id)."""
        owned, principal = TenantCheckpoints(self.node.sessions, self.node.checkpoints), _caller()
        return await self._audited(
            "session.fork",
            None,
            lambda: run_sync(owned.fork, principal, session_id, ForkRequest()),
        )

    async def close_session(self, session_id: str) -> SessionInfo | None:
        return await self._session("close", session_id, lambda s, p: s.close(p, session_id))

    async def datasets(self) -> DatasetPage:
        """The caller's tenant's: those its runs and sessions mount by name."""
        tenant = _caller().tenant
        return await self._audited(
            "dataset.list", None, lambda: run_sync(self.node.datasets.page, tenant)
        )

    async def describe_dataset(self, name: str, version: int | None) -> DatasetDescription:
        tenant = _caller().tenant

        async def described() -> DatasetDescription:
            number = version
            if number is None:
                found = await run_sync(self.node.datasets.version, tenant, name, None)
                number = found.version
            return await describe(self.node, tenant, name, number)

        return await self._audited("dataset.describe", name, described)

    async def aclose(self) -> None:
        """Nothing of its own: the daemon closes its sessions when it stops."""
