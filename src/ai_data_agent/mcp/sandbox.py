"""What the MCP tools need of a sandbox service, whatever runs it.

    sandbox: SandboxService = LocalSandbox(settings)  # the library on the local engine
    sandbox = DaemonSandbox(daemon)                    # inside the daemon: its own records
    sandbox = RemoteSandbox(client)                    # a daemon over HTTP
    job = await sandbox.start_run(request, on_output)  # a ToolJob
    result = await job.wait()                          # cancellable; job.cancel() stops it

The tools are written against `SandboxService` alone. A call that runs code returns a
`ToolJob` at once, so that the tools can wait for it (a cancelled wait leaves the
job running), report progress while it runs, and stop it when the MCP request
is cancelled. ``on_output(kind, text)`` sees ``stdout`` and ``stderr`` as they
are produced, on any thread. Errors are the package's one tree
(`ai_data_agent.errors`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from ai_data_agent.dataset_models import DatasetDescription, DatasetPage
from ai_data_agent.models import RunRequest, RunResult
from ai_data_agent.session_models import (
    CellResult,
    PackagesResult,
    SessionFile,
    SessionInfo,
    SessionRequest,
)

__all__ = ["Capabilities", "OutputSink", "SandboxService", "ThreadJob", "ToolJob"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
OutputSink = Callable[[str, str], None]


@dataclass(frozen=True)
class Capabilities:
    """What the service behind a `SandboxService` allows, for the tools' defaults and annotations."""

    allow_network: bool
    sessions: bool
    max_timeout_s: float
    interrupt_grace_s: float


class ToolJob(Protocol[T_co]):
    """Work in progress: a run or a cell."""

    async def wait(self) -> T_co:
        """Its outcome; cancelling the wait does not stop the job."""

    async def cancel(self) -> None:
        """Stop it (a run is killed; a cell is interrupted, its session kept)."""


class ThreadJob(Generic[T]):
    """A blocking call on its own thread, awaited from the event loop (`ToolJob`)."""

    def __init__(self, call: Callable[[], T], stop: Callable[[], Awaitable[None]]) -> None:
        self._stop = stop
        loop = asyncio.get_running_loop()
        self._future: asyncio.Future[T] = loop.create_future()

        def work() -> None:
            try:
                outcome = call()
            except BaseException as exc:  # handed to the waiter, raised there
                loop.call_soon_threadsafe(self._fail, exc)
            else:
                loop.call_soon_threadsafe(self._resolve, outcome)

        threading.Thread(target=work, name="mcp-job", daemon=True).start()

    def _resolve(self, outcome: T) -> None:
        if not self._future.done():
            self._future.set_result(outcome)

    def _fail(self, error: BaseException) -> None:
        if not self._future.done():
            self._future.set_exception(error)

    async def wait(self) -> T:
        return await asyncio.shield(self._future)

    async def cancel(self) -> None:
        await self._stop()


class SandboxService(Protocol):
    """See the module docstring. Every method may raise from `ai_data_agent.errors`."""

    capabilities: Capabilities

    async def start_run(self, request: RunRequest, on_output: OutputSink) -> ToolJob[RunResult]: ...

    async def artifact(self, run_id: str, path: str) -> bytes:
        """A file a run left under outputs/ (``path`` relative to it), as its result lists."""

    async def create_session(self, request: SessionRequest) -> SessionInfo: ...

    async def start_cell(
        self, session_id: str, code: str, timeout_s: float | None, on_output: OutputSink
    ) -> ToolJob[CellResult]: ...

    async def install(self, session_id: str, requirements: list[str]) -> PackagesResult: ...

    async def upload(self, session_id: str, path: str, data: bytes) -> str: ...

    async def files(self, session_id: str) -> list[SessionFile]: ...

    async def download(self, session_id: str, path: str) -> bytes: ...

    async def restart(self, session_id: str) -> SessionInfo: ...

    async def fork(self, session_id: str) -> SessionInfo:
        """A new session from the session's state now (a daemon's checkpoint)."""

    async def close_session(self, session_id: str) -> SessionInfo | None:
        """Its record, closed now or before (as it ended); None when it is unknown.
        A call to a session that ended raises ``SessionGone.ended`` with its status."""

    async def datasets(self) -> DatasetPage:
        """The datasets this caller may mount."""

    async def describe_dataset(self, name: str, version: int | None) -> DatasetDescription:
        """A version's description (the latest when ``version`` is None)."""

    async def aclose(self) -> None:
        """Release what this object holds: a local sandbox closes its sessions (their
        containers go); sessions on a daemon stay there until closed or expired."""
