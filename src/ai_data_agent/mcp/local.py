"""The `SandboxService` of ``ai-data-agent mcp`` without ``--server``: the library on the local engine.

    async with LocalSandbox(settings) as sandbox:
        job = await sandbox.start_run(RunRequest(code="print(1)"), on_output)
        result = await job.wait()

Runs go through `Executor.run` (their artifacts kept in a temporary folder of
this process, for the run resources), sessions through the library's
`Session`. Blocking calls run on worker threads; `aclose` closes every session
this process started and removes the folder.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio

from ai_data_agent.dataset_models import DatasetDescription, DatasetPage
from ai_data_agent.errors import NotFound, RequestRejected, SessionGone, SessionLimit
from ai_data_agent.executor import Executor, RunEvent, Session
from ai_data_agent.limits import resolve_run
from ai_data_agent.mcp.sandbox import Capabilities, OutputSink, ThreadJob, ToolJob
from ai_data_agent.models import RunRequest, RunResult
from ai_data_agent.paths import normalise_relative_path
from ai_data_agent.session_models import (
    CellResult,
    PackagesResult,
    SessionFile,
    SessionInfo,
    SessionRequest,
)
from ai_data_agent.settings import Settings

__all__ = ["LocalSandbox"]

T = TypeVar("T")
KEPT_RUNS = 200  # results whose artifacts stay readable; older folders are removed
NO_DATASETS = "datasets live on a daemon: start this server with `ai-data-agent mcp --server URL`"
KEPT_ENDED = 200  # closed sessions whose status a call still names


def _forward(on_output: OutputSink) -> Callable[[RunEvent], None]:
    def on_event(event: RunEvent) -> None:
        if event.kind in ("stdout", "stderr"):
            on_output(event.kind, event.data)

    return on_event


async def _in_thread(call: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(call)


class LocalSandbox:
    """See the module docstring."""

    def __init__(self, settings: Settings, executor: Executor | None = None) -> None:
        self.settings = settings
        self.executor = executor or Executor(settings)
        self.capabilities = Capabilities(
            allow_network=settings.allow_network,
            sessions=settings.max_sessions > 0,
            max_timeout_s=settings.max_timeout_s,
            interrupt_grace_s=settings.interrupt_grace_s,
        )
        self._folder = Path(tempfile.mkdtemp(prefix="ai-data-agent-mcp-"))
        self._runs: dict[str, RunResult] = {}
        self._sessions: dict[str, Session] = {}
        self._ended: dict[str, SessionInfo] = {}
        self._lock = threading.Lock()

    async def __aenter__(self) -> LocalSandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- runs ---------------------------------------------------------------------------
    async def start_run(self, request: RunRequest, on_output: OutputSink) -> ToolJob[RunResult]:
        limits = resolve_run(request, self.settings)  # RequestRejected before any thread starts
        cancel = threading.Event()
        run_id = uuid.uuid4().hex

        def run() -> RunResult:
            result = self.executor.run(
                request,
                run_id=run_id,
                on_event=_forward(on_output),
                cancel=cancel,
                artifacts_dir=self._folder / run_id,
                limits=limits,
            )
            self._keep(result)
            return result

        async def stop() -> None:
            cancel.set()

        return ThreadJob(run, stop)

    def _keep(self, result: RunResult) -> None:
        """Remember the run for its artifacts; forget the oldest runs and their files."""
        with self._lock:
            self._runs[result.id] = result
            while len(self._runs) > KEPT_RUNS:
                oldest = next(iter(self._runs))
                del self._runs[oldest]
                shutil.rmtree(self._folder / oldest, ignore_errors=True)

    async def artifact(self, run_id: str, path: str) -> bytes:
        with self._lock:
            result = self._runs.get(run_id)
        listed = {a.path for a in result.artifacts} if result is not None else set()
        if path not in listed:
            raise NotFound(f"run {run_id[:64]!r} has no artifact {path[:200]!r}", run_id=run_id)
        base = self._folder / run_id
        return await _in_thread((base / normalise_relative_path(path)).read_bytes)

    # -- sessions -----------------------------------------------------------------------
    def _session(self, session_id: str) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
            ended = self._ended.get(session_id)
        if session is None:
            raise SessionGone.ended(session_id, ended.status.value if ended else None)
        return session

    async def create_session(self, request: SessionRequest) -> SessionInfo:
        with self._lock:
            if len(self._sessions) >= self.settings.max_sessions:
                raise SessionLimit(
                    f"{len(self._sessions)} sessions live, the most this server keeps "
                    f"({self.settings.max_sessions})"
                )
        session = await _in_thread(lambda: self.executor.session(request))
        with self._lock:
            self._sessions[session.id] = session
        return session.info()

    async def start_cell(
        self, session_id: str, code: str, timeout_s: float | None, on_output: OutputSink
    ) -> ToolJob[CellResult]:
        session = self._session(session_id)

        def run() -> CellResult:
            return session.run(code, timeout_s=timeout_s, on_event=_forward(on_output))

        async def stop() -> None:
            await _in_thread(session.interrupt)

        return ThreadJob(run, stop)

    async def _call(self, session_id: str, call: Callable[[Session], T]) -> T:
        session = self._session(session_id)
        return await _in_thread(lambda: call(session))

    async def install(self, session_id: str, requirements: list[str]) -> PackagesResult:
        return await self._call(session_id, lambda s: s.install(requirements))

    async def upload(self, session_id: str, path: str, data: bytes) -> str:
        return await self._call(session_id, lambda s: s.upload(path, data))

    async def files(self, session_id: str) -> list[SessionFile]:
        return await self._call(session_id, lambda s: s.files())

    async def download(self, session_id: str, path: str) -> bytes:
        return await self._call(session_id, lambda s: s.download(path))

    async def restart(self, session_id: str) -> SessionInfo:
        def restart(session: Session) -> SessionInfo:
            session.restart()
            return session.info()

        return await self._call(session_id, restart)

    async def fork(self, session_id: str) -> SessionInfo:
        raise RequestRejected(
            None, "forking a session needs a daemon, which keeps checkpoints: use --server"
        )

    async def close_session(self, session_id: str) -> SessionInfo | None:
        with self._lock:
            session = self._sessions.pop(session_id, None)
            if session is None:
                return self._ended.get(session_id)
        await _in_thread(session.close)
        info = session.info()
        with self._lock:  # a closed session answers as on a daemon: closed, not unknown
            self._ended[session_id] = info
            while len(self._ended) > KEPT_ENDED:
                del self._ended[next(iter(self._ended))]
        return info

    async def datasets(self) -> DatasetPage:
        raise RequestRejected("datasets", NO_DATASETS)

    async def describe_dataset(self, name: str, version: int | None) -> DatasetDescription:
        raise RequestRejected("datasets", NO_DATASETS)

    async def aclose(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}

        def close_all(*_: Any) -> None:
            for session in sessions:
                session.close()
            # The agent host kills this process seconds after it closes stdin.
            self.executor.close(stop_compiles=True)
            shutil.rmtree(self._folder, ignore_errors=True)

        with anyio.CancelScope(shield=True):
            await _in_thread(close_all)
