"""The `SandboxService` of ``ai-data-agent mcp --server URL``: a daemon through the HTTP client.

    sandbox = await RemoteSandbox.connect(Client(url, token))

Runs are submitted and followed over their event stream (so output arrives
live and a cancel can name the run); sessions are `RemoteSession` handles.
The daemon's limits come from ``GET /v1/info`` once, at `connect`. Every call
is a blocking HTTP request on a worker thread; errors are the client's, the
same classes the daemon raised.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
from pydantic import ValidationError

from ai_data_agent.client import Client, RemoteSession
from ai_data_agent.dataset_models import DatasetDescription, DatasetPage
from ai_data_agent.errors import NotFound, ServerError
from ai_data_agent.mcp.sandbox import Capabilities, OutputSink, ThreadJob, ToolJob
from ai_data_agent.models import RunRequest, RunResult
from ai_data_agent.session_models import (
    CellResult,
    PackagesResult,
    SessionFile,
    SessionInfo,
    SessionRequest,
)

__all__ = ["RemoteSandbox"]

T = TypeVar("T")


async def _in_thread(call: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(call)


class RemoteSandbox:
    """See the module docstring."""

    def __init__(self, client: Client, capabilities: Capabilities) -> None:
        self.client = client
        self.capabilities = capabilities
        self._sessions: dict[str, RemoteSession] = {}
        self._lock = threading.Lock()

    @classmethod
    async def connect(cls, client: Client) -> RemoteSandbox:
        """Read the daemon's limits (``GET /v1/info``).

        Raises:
            AiDataAgentError: the daemon cannot be reached or refuses the token.
        """
        info = await _in_thread(client.info)
        sessions = info.sessions
        capabilities = Capabilities(
            allow_network=info.allow_network,
            sessions=sessions is not None,
            max_timeout_s=info.limits.timeout_s.max,
            interrupt_grace_s=sessions.interrupt_grace_s if sessions is not None else 0.0,
        )
        return cls(client, capabilities)

    # -- runs ---------------------------------------------------------------------------
    async def start_run(self, request: RunRequest, on_output: OutputSink) -> ToolJob[RunResult]:
        run_id = await _in_thread(lambda: self.client.submit_request(request))

        def follow() -> RunResult:
            for name, data in self.client.events(run_id):
                if name in ("stdout", "stderr"):
                    on_output(name, str(data.get("data", "")))
                elif name == "result":
                    try:
                        return RunResult.model_validate(data)
                    except ValidationError as exc:
                        raise ServerError("the result event is not a RunResult") from exc
            return self.client.wait(run_id)  # the stream ended early

        async def stop() -> None:
            await _in_thread(lambda: self.client.cancel(run_id))

        return ThreadJob(follow, stop)

    async def artifact(self, run_id: str, path: str) -> bytes:
        def fetch() -> bytes:
            listed = {a.path: a for a in self.client.artifacts(run_id)}
            artifact = listed.get(path)
            if artifact is None:
                raise NotFound(f"run {run_id[:64]!r} has no artifact {path[:200]!r}")
            with tempfile.TemporaryDirectory(prefix="ai-data-agent-mcp-") as folder:
                return self.client.download_artifact(run_id, artifact, Path(folder)).read_bytes()

        return await _in_thread(fetch)

    # -- sessions -----------------------------------------------------------------------
    def _session(self, session_id: str) -> RemoteSession:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:  # one this process did not start: the daemon knows it or not
            session = self.client.session_of(session_id)
            with self._lock:
                self._sessions[session_id] = session
        return session

    async def _call(self, session_id: str, call: Callable[[RemoteSession], T]) -> T:
        return await _in_thread(lambda: call(self._session(session_id)))

    async def create_session(self, request: SessionRequest) -> SessionInfo:
        fields: dict[str, Any] = request.model_dump(exclude_defaults=True)
        session = await _in_thread(lambda: self.client.session(**fields))
        with self._lock:
            self._sessions[session.info.id] = session
        return session.info

    async def start_cell(
        self, session_id: str, code: str, timeout_s: float | None, on_output: OutputSink
    ) -> ToolJob[CellResult]:
        session = await _in_thread(lambda: self._session(session_id))

        def output(kind: str, data: dict[str, Any]) -> None:
            if kind in ("stdout", "stderr"):
                on_output(kind, str(data.get("data", "")))

        async def stop() -> None:
            await _in_thread(session.interrupt)

        return ThreadJob(lambda: session.run(code, timeout_s=timeout_s, on_output=output), stop)

    async def install(self, session_id: str, requirements: list[str]) -> PackagesResult:
        return await self._call(session_id, lambda s: s.install(requirements))

    async def upload(self, session_id: str, path: str, data: bytes) -> str:
        return await self._call(session_id, lambda s: s.upload(path, data).path)

    async def files(self, session_id: str) -> list[SessionFile]:
        return await self._call(session_id, lambda s: s.files())

    async def download(self, session_id: str, path: str) -> bytes:
        return await self._call(session_id, lambda s: s.download(path))

    async def restart(self, session_id: str) -> SessionInfo:
        return await self._call(session_id, lambda s: s.restart())

    async def fork(self, session_id: str) -> SessionInfo:
        return await self._call(session_id, lambda s: s.fork().info)

    async def close_session(self, session_id: str) -> SessionInfo | None:
        with self._lock:
            self._sessions.pop(session_id, None)
        try:
            session = await _in_thread(lambda: self.client.session_of(session_id))
        except NotFound:
            return None
        return await _in_thread(session.close)

    async def datasets(self) -> DatasetPage:
        return await _in_thread(self.client.datasets.list)

    async def describe_dataset(self, name: str, version: int | None) -> DatasetDescription:
        return await _in_thread(lambda: self.client.datasets.describe(name, version))

    async def aclose(self) -> None:
        await _in_thread(self.client.close)
