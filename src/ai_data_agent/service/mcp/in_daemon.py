"""The `Sandbox` of the daemon's ``/mcp``: its node's dispatcher, run store and sessions.

    sandbox = DaemonSandbox(app.state.daemon)     # one node, or a cluster's API node

A run through MCP is admitted, queued, recorded and counted exactly as a
``POST /v1/runs``, through the same `service.runs` (it shows in ``GET
/v1/runs``, its artifacts under ``/v1/runs/{id}/artifacts``), and a session through MCP is a session of the
HTTP API (``/v1/sessions/{id}``), under the same limits. Live output comes
from the same event logs that feed the SSE routes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Generic, TypeVar

import anyio
from anyio.to_thread import run_sync

from ai_data_agent.checkpoint_models import ForkRequest
from ai_data_agent.errors import ServerError
from ai_data_agent.mcp.sandbox import Capabilities, Job, OutputSink
from ai_data_agent.models import RunRequest, RunResult
from ai_data_agent.service import runs
from ai_data_agent.service.events import RunEvents
from ai_data_agent.service.handles import CellHandle, Completion, RunHandle, wait_done
from ai_data_agent.service.node import ServiceNode
from ai_data_agent.session_models import (
    CellRequest,
    CellResult,
    PackagesResult,
    SessionFile,
    SessionInfo,
    SessionRequest,
)

__all__ = ["DaemonSandbox"]

H = TypeVar("H", bound=Completion)


async def _pump(events: RunEvents, on_output: OutputSink) -> None:
    """Feed ``stdout``/``stderr`` events to ``on_output`` until the log closes."""
    async for name, data in events.follow():
        if name in ("stdout", "stderr"):
            on_output(name, str(json.loads(data).get("data", "")))


class _Followed(Generic[H]):
    """A run or cell of the node, as an MCP `Job`: its output fed to ``on_output``."""

    def __init__(self, node: ServiceNode, handle: H, on_output: OutputSink) -> None:
        self._node = node
        self._handle = handle
        self._on_output = on_output

    async def _done(self) -> H:
        async with anyio.create_task_group() as group:
            group.start_soon(_pump, self._handle.events, self._on_output)
            await wait_done(self._handle)
        return self._handle


class _RunJob(_Followed[RunHandle]):
    async def wait(self) -> RunResult:
        return await runs.final_result(self._node, await self._done())

    async def cancel(self) -> None:
        await runs.cancel(self._node, self._handle.id)


class _CellJob(_Followed[CellHandle]):
    async def wait(self) -> CellResult:
        handle = await self._done()
        if handle.error is not None:
            raise handle.error
        if handle.result is None:
            raise ServerError("the cell ended without a result")
        return handle.result

    async def cancel(self) -> None:
        await run_sync(self._node.sessions.interrupt, self._handle.session_id)


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

    async def start_run(self, request: RunRequest, on_output: OutputSink) -> Job[RunResult]:
        handle = await runs.admit(self.node, request)  # refused: nothing recorded
        return _RunJob(self.node, handle, on_output)

    async def artifact(self, run_id: str, path: str) -> bytes:
        """Only files the run's result lists, from the run's own folder (as the HTTP route)."""
        _, body = await runs.listed_artifact(self.node, run_id, path)
        if isinstance(body, Path):
            return await run_sync(body.read_bytes)
        return await run_sync(b"".join, body)

    async def create_session(self, request: SessionRequest) -> SessionInfo:
        return await run_sync(self.node.sessions.create, request)

    async def start_cell(
        self, session_id: str, code: str, timeout_s: float | None, on_output: OutputSink
    ) -> Job[CellResult]:
        request = CellRequest(code=code, timeout_s=timeout_s)
        handle = await run_sync(self.node.sessions.submit_cell, session_id, request)
        return _CellJob(self.node, handle, on_output)

    async def install(self, session_id: str, requirements: list[str]) -> PackagesResult:
        return await run_sync(self.node.sessions.install, session_id, requirements)

    async def upload(self, session_id: str, path: str, data: bytes) -> str:
        return await run_sync(self.node.sessions.upload, session_id, path, data)

    async def files(self, session_id: str) -> list[SessionFile]:
        return await run_sync(self.node.sessions.files, session_id)

    async def download(self, session_id: str, path: str) -> bytes:
        return await run_sync(self.node.sessions.download, session_id, path)

    async def restart(self, session_id: str) -> SessionInfo:
        return await run_sync(self.node.sessions.restart, session_id)

    async def fork(self, session_id: str) -> SessionInfo:
        service = self.node.checkpoints
        return await run_sync(lambda: service.fork(session_id, ForkRequest()))

    async def close_session(self, session_id: str) -> SessionInfo | None:
        return await run_sync(self.node.sessions.close, session_id)

    async def aclose(self) -> None:
        """Nothing of its own: the daemon closes its sessions when it stops."""
