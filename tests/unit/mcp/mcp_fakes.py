"""A `SandboxService` in memory for the MCP tools' unit tests: what each code does is below.

"sleep"      a cell that runs until cancelled (then ``interrupted``, state preserved)
"1/0"        a cell that fails with a traceback
"png"        a cell with two PNG display outputs and a PNG value
"write"      a cell that leaves outputs/figure_1.png
"busy"       SessionBusy before the cell starts
"crash"      an unexpected exception whose message must not reach the model
anything     succeeds, printing the code
"""

from __future__ import annotations

import base64
import struct
import zlib
from datetime import UTC, datetime

import anyio

from ai_data_agent.checkpoint_models import LostVariable, RestoreReport
from ai_data_agent.errors import SessionBusy, SessionGone
from ai_data_agent.mcp.sandbox import Capabilities, OutputSink
from ai_data_agent.models import (
    Artifact,
    InstallReport,
    PackageInfo,
    RunRequest,
    RunResult,
    RunStatus,
)
from ai_data_agent.session_models import (
    CellError,
    CellResult,
    CellStatus,
    DisplayOutput,
    PackagesResult,
    SessionFile,
    SessionInfo,
    SessionRequest,
    SessionStatus,
)

SECRET = "secret-internal-detail"


def tiny_png() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


class FakeJob:
    def __init__(self, outcome: CellResult | RunResult | None, on_cancel: CellResult | None = None):
        self.outcome = outcome
        self.on_cancel = on_cancel
        self.done = anyio.Event()
        self.cancelled = False
        if outcome is not None:
            self.done.set()

    async def wait(self):  # type: ignore[no-untyped-def]
        await self.done.wait()
        return self.outcome

    async def cancel(self) -> None:
        self.cancelled = True
        self.outcome = self.on_cancel
        self.done.set()


def _figure() -> Artifact:
    return Artifact(path="figure_1.png", size=len(tiny_png()), sha256="x", media_type="image/png")


def _cell(session_id: str, count: int, **fields: object) -> CellResult:
    base: dict[str, object] = {
        "session_id": session_id,
        "execution_count": count,
        "generation": 1,
        "status": CellStatus.SUCCEEDED,
        "state": "preserved",
    }
    return CellResult.model_validate({**base, **fields})


class FakeSandbox:
    def __init__(self) -> None:
        self.capabilities = Capabilities(
            allow_network=False, sessions=True, max_timeout_s=60.0, interrupt_grace_s=0.1
        )
        self.sessions: dict[str, list[str]] = {}
        self.files_of: dict[str, dict[str, bytes]] = {}
        self.closed: list[str] = []
        self.jobs: list[FakeJob] = []
        self.runs: list[RunRequest] = []
        self.timeouts: list[float | None] = []

    def _known(self, session_id: str) -> None:
        if session_id not in self.sessions:
            raise SessionGone(f"session {session_id} is unknown", session_id=session_id)

    def _info(self, session_id: str) -> SessionInfo:
        now = datetime.now(UTC)
        status = SessionStatus.CLOSED if session_id in self.closed else SessionStatus.IDLE
        return SessionInfo(id=session_id, status=status, created_at=now, last_activity_at=now)

    async def start_run(self, request: RunRequest, on_output: OutputSink) -> FakeJob:
        self.runs.append(request)
        on_output("stdout", f"ran {request.code}\n")
        result = RunResult(
            id="run1",
            status=RunStatus.SUCCEEDED,
            exit_code=0,
            stdout=f"ran {request.code}\n",
            artifacts=[_figure()],
            result=DisplayOutput(data={"text/plain": repr(request.code)}),
        )
        job = FakeJob(result)
        self.jobs.append(job)
        return job

    async def artifact(self, run_id: str, path: str) -> bytes:
        return tiny_png()

    async def create_session(self, request: SessionRequest) -> SessionInfo:
        session_id = f"s{len(self.sessions) + 1}"
        self.sessions[session_id] = []
        self.files_of[session_id] = {f.path: f.data for f in request.files}
        return self._info(session_id)

    async def start_cell(
        self, session_id: str, code: str, timeout_s: float | None, on_output: OutputSink
    ) -> FakeJob:
        self._known(session_id)
        if code == "busy":
            raise SessionBusy(
                f"session {session_id} is busy with another call", session_id=session_id
            )
        if code == "crash":
            raise RuntimeError(SECRET)
        self.sessions[session_id].append(code)
        self.timeouts.append(timeout_s)
        count = len(self.sessions[session_id])
        on_output("stdout", f"running {code}\n")
        if code == "sleep":
            interrupted = _cell(session_id, count, status=CellStatus.INTERRUPTED)
            job = FakeJob(None, on_cancel=interrupted)
        elif code == "1/0":
            error = CellError(
                ename="ZeroDivisionError",
                evalue="division by zero",
                traceback=[  # as the kernel sends it: TracebackException.format()
                    "Traceback (most recent call last):\n",
                    '  File "<cell 1>", line 1, in <module>\n    1/0\n    ~^~\n',
                    "ZeroDivisionError: division by zero\n",
                ],
            )
            job = FakeJob(_cell(session_id, count, status=CellStatus.ERROR, error=error))
        elif code == "write":
            job = FakeJob(_cell(session_id, count, artifacts=[_figure()]))
        elif code == "png":
            image = {"text/plain": "<Figure>", "image/png": base64.b64encode(tiny_png()).decode()}
            outputs = [DisplayOutput(data=image), DisplayOutput(data=image)]
            job = FakeJob(
                _cell(session_id, count, outputs=outputs, result=DisplayOutput(data=image))
            )
        else:
            value = DisplayOutput(data={"text/plain": repr(code)})
            job = FakeJob(_cell(session_id, count, stdout=f"running {code}\n", result=value))
        self.jobs.append(job)
        return job

    async def install(self, session_id: str, requirements: list[str]) -> PackagesResult:
        self._known(session_id)
        added = [PackageInfo(name=r, version="1.0") for r in requirements]
        return PackagesResult(requirements=requirements, added=added, install=InstallReport())

    async def upload(self, session_id: str, path: str, data: bytes) -> str:
        self._known(session_id)
        self.files_of[session_id][path] = data
        return path

    async def files(self, session_id: str) -> list[SessionFile]:
        self._known(session_id)
        now = datetime.now(UTC)
        return [
            SessionFile(path=p, size=len(d), modified_at=now)
            for p, d in self.files_of[session_id].items()
        ]

    async def download(self, session_id: str, path: str) -> bytes:
        self._known(session_id)
        return self.files_of[session_id][path]

    async def restart(self, session_id: str) -> SessionInfo:
        self._known(session_id)
        return self._info(session_id)

    async def fork(self, session_id: str) -> SessionInfo:
        self._known(session_id)
        fork_id = f"s{len(self.sessions) + 1}"
        self.sessions[fork_id] = list(self.sessions[session_id])
        self.files_of[fork_id] = dict(self.files_of[session_id])
        lost = [LostVariable(name="sock", type="socket", reason="TypeError: cannot pickle")]
        report = RestoreReport(
            session_id=fork_id, checkpoint=1, state="restored", restored=["df"], lost=lost
        )
        return self._info(fork_id).model_copy(update={"restore": report})

    async def close_session(self, session_id: str) -> SessionInfo | None:
        if session_id not in self.sessions:
            return None
        self.closed.append(session_id)
        return self._info(session_id)

    async def aclose(self) -> None:
        pass
