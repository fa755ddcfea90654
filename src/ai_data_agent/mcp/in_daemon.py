"""The `Sandbox` of the daemon's ``/mcp``: its node's dispatcher, run store and sessions.

    sandbox = DaemonSandbox(app.state.daemon)     # one node, or a cluster's API node

A run through MCP is admitted, queued, recorded and counted exactly as a
``POST /v1/runs`` (it shows in ``GET /v1/runs``, its artifacts under
``/v1/runs/{id}/artifacts``), and a session through MCP is a session of the
HTTP API (``/v1/sessions/{id}``), under the same limits. Live output comes
from the same event logs that feed the SSE routes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio

from ai_data_agent.errors import NotFound, ServerError
from ai_data_agent.limits import resolve_run
from ai_data_agent.mcp.sandbox import Capabilities, Job, OutputSink
from ai_data_agent.models import RunRequest, RunResult, RunStatus
from ai_data_agent.service.cells import CellHandle, wait_cell
from ai_data_agent.service.dispatcher import CANCEL_WAIT_S, RunHandle, wait_done
from ai_data_agent.service.events import RunEvents
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

T = TypeVar("T")


async def _in_thread(call: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(call)


async def _pump(events: RunEvents, on_output: OutputSink) -> None:
    """Feed ``stdout``/``stderr`` events to ``on_output`` until the log closes."""
    async for name, data in events.follow():
        if name in ("stdout", "stderr"):
            on_output(name, str(json.loads(data).get("data", "")))


class _RunJob:
    def __init__(self, daemon: ServiceNode, handle: RunHandle, on_output: OutputSink) -> None:
        self._daemon = daemon
        self._handle = handle
        self._on_output = on_output

    async def wait(self) -> RunResult:
        async with anyio.create_task_group() as group:
            group.start_soon(_pump, self._handle.events, self._on_output)
            await wait_done(self._handle)
        result = self._handle.result
        if result is None:  # a worker that never finished it: the record says what happened
            record = await _in_thread(lambda: self._daemon.store.get(self._handle.id))
            status = RunStatus(record.status) if record is not None else RunStatus.ERROR
            error = record.error if record is not None else "the run left no record"
            result = RunResult(id=self._handle.id, status=status, error=error)
        return result

    async def cancel(self) -> None:
        await _in_thread(lambda: self._daemon.dispatcher.cancel(self._handle.id))
        with anyio.move_on_after(CANCEL_WAIT_S):
            await wait_done(self._handle)


class _CellJob:
    def __init__(self, daemon: ServiceNode, handle: CellHandle, on_output: OutputSink) -> None:
        self._daemon = daemon
        self._handle = handle
        self._on_output = on_output

    async def wait(self) -> CellResult:
        async with anyio.create_task_group() as group:
            group.start_soon(_pump, self._handle.events, self._on_output)
            await wait_cell(self._handle)
        if self._handle.error is not None:
            raise self._handle.error
        if self._handle.result is None:
            raise ServerError("the cell ended without a result")
        return self._handle.result

    async def cancel(self) -> None:
        sessions = self._daemon.sessions
        await _in_thread(lambda: sessions.interrupt(self._handle.session_id))


class DaemonSandbox:
    """See the module docstring."""

    def __init__(self, daemon: ServiceNode) -> None:
        self.daemon = daemon
        s = daemon.settings
        self.capabilities = Capabilities(
            allow_network=s.allow_network,
            sessions=s.max_sessions > 0,
            max_timeout_s=s.max_timeout_s,
            interrupt_grace_s=s.interrupt_grace_s,
        )

    async def start_run(self, request: RunRequest, on_output: OutputSink) -> Job[RunResult]:
        limits = resolve_run(request, self.daemon.settings)  # refused: nothing recorded
        handle = await _in_thread(lambda: self.daemon.dispatcher.submit(request, limits))
        return _RunJob(self.daemon, handle, on_output)

    async def artifact(self, run_id: str, path: str) -> bytes:
        """Only files the run's result lists, from the run's own folder (as the HTTP route)."""
        record = await _in_thread(lambda: self.daemon.store.get(run_id))
        result = record.result if record is not None else None
        listed = {a.path for a in result.artifacts} if result is not None else set()
        body = None
        if path in listed:
            body = await _in_thread(lambda: self.daemon.artifact_body(run_id, path))
        if body is None:
            raise NotFound(f"run {run_id[:64]!r} has no artifact {path[:200]!r}", run_id=run_id)
        if isinstance(body, Path):
            return await _in_thread(body.read_bytes)
        return await _in_thread(lambda: b"".join(body))

    async def create_session(self, request: SessionRequest) -> SessionInfo:
        return await _in_thread(lambda: self.daemon.sessions.create(request))

    async def start_cell(
        self, session_id: str, code: str, timeout_s: float | None, on_output: OutputSink
    ) -> Job[CellResult]:
        request = CellRequest(code=code, timeout_s=timeout_s)
        handle = await _in_thread(lambda: self.daemon.sessions.submit_cell(session_id, request))
        return _CellJob(self.daemon, handle, on_output)

    async def install(self, session_id: str, requirements: list[str]) -> PackagesResult:
        return await _in_thread(lambda: self.daemon.sessions.install(session_id, requirements))

    async def upload(self, session_id: str, path: str, data: bytes) -> str:
        return await _in_thread(lambda: self.daemon.sessions.upload(session_id, path, data))

    async def files(self, session_id: str) -> list[SessionFile]:
        return await _in_thread(lambda: self.daemon.sessions.files(session_id))

    async def download(self, session_id: str, path: str) -> bytes:
        return await _in_thread(lambda: self.daemon.sessions.download(session_id, path))

    async def restart(self, session_id: str) -> SessionInfo:
        return await _in_thread(lambda: self.daemon.sessions.restart(session_id))

    async def close_session(self, session_id: str) -> SessionInfo | None:
        return await _in_thread(lambda: self.daemon.sessions.close(session_id))

    async def aclose(self) -> None:
        """Nothing of its own: the daemon closes its sessions when it stops."""
