"""Stateful sessions: a kernel in a fresh, locked-down container, cells one at a time.

    with executor.session(SessionRequest(requirements=["pandas"])) as s:
        s.upload("data.csv", csv_bytes)
        s.run("import pandas as pd; df = pd.read_csv('data.csv')")
        cell = s.run("df.describe()")           # cell.result.data["text/html"]
        s.install(["matplotlib"])                # never a network in this container
        s.download("outputs/chart.png")

The container is a sandbox like a run's (same image, uid, read-only root,
limits) with no network interface but ``lo``, ever: requirements, at start
or added later, install through the environment cache's own install sandbox
and reach the session as read-only environments. One call at a time: a
second call while one is in progress raises `SessionBusy` (`interrupt` is the
exception). A session whose container or runner is gone raises `SessionGone`
from every call. It asks only a `SandboxProvider` (the executor that made it:
`Executor.new_session`) for its sandbox and environments. See
`sandbox.session` for what the runner does.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loguru import logger

from ai_data_agent.checkpoint_models import RestoreReport
from ai_data_agent.errors import (
    FileNotFound,
    RequestRejected,
    RequestTooLarge,
    SessionBusy,
    SessionGone,
)
from ai_data_agent.executor.artifacts import ArtifactCollector
from ai_data_agent.executor.env import CachedEnv, Vanished, once_more_if_vanished
from ai_data_agent.executor.events import EventHandler
from ai_data_agent.executor.frames import (
    AckFrame,
    ArtifactBegin,
    ArtifactData,
    ArtifactEnd,
    Frame,
    KernelFrame,
)
from ai_data_agent.executor.session.cells import CellCollector, restored
from ai_data_agent.executor.session.env import install_env, package_diff
from ai_data_agent.executor.session.provider import SandboxProvider
from ai_data_agent.executor.session.start import start_kernel
from ai_data_agent.executor.session.wire import SessionWire
from ai_data_agent.limits import resolve_run, resolve_session
from ai_data_agent.models import Artifact, InstallReport, RunRequest
from ai_data_agent.paths import normalise_relative_path
from ai_data_agent.session_models import (
    CellResult,
    PackagesResult,
    SessionFile,
    SessionInfo,
    SessionRequest,
    SessionStatus,
)

__all__ = ["Session"]

OP_WAIT_S = 60.0
CELL_SLACK_S = 30.0
UPLOAD_BYTES_PER_S = 10 * 1024 * 1024


def _now() -> datetime:
    return datetime.now(UTC)


class Session:
    """One live session. Thread-safe; one call at a time (see the module docstring)."""

    def __init__(
        self, provider: SandboxProvider, request: SessionRequest, session_id: str | None = None
    ) -> None:
        self.provider = provider
        self.settings = provider.settings
        self.id = session_id or uuid.uuid4().hex
        self.limits = resolve_session(request, self.settings)
        self.request = request
        self.requirements: list[str] = list(request.requirements)
        self.env: CachedEnv | None = None
        self.status = SessionStatus.STARTING
        self.created_at = _now()
        self.last_activity_at = self.created_at
        self.generation = 0
        self.execution_count = 0
        self.image = ""
        self.error: str | None = None
        self.checkpoint_seq: int | None = None  # its latest checkpoint
        self.restore_report: RestoreReport | None = None  # its latest resume
        self.restore_pending: RestoreReport | None = None  # the next cell says so
        self._wire: SessionWire | None = None
        self._call = threading.Lock()
        self._in_cell = False
        self._log = logger.bind(run_id=self.id)

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> Session:
        """Install the requirements (cache), start the sandbox and its kernel.

        Raises:
            InstallFailed: the requirements did not install (nothing was started).
            ExecutorError: Docker or the host failed (nothing is left behind).
        """
        self.image = self.provider.resolve_image()
        self._wire, self.generation = once_more_if_vanished(
            self.provider.environments, self._start_once, run_id=self.id, step="session"
        )
        self.status = SessionStatus.IDLE
        self._log.info("session started: generation {}, image {}", self.generation, self.image)
        return self

    def _start_once(self) -> tuple[SessionWire, int] | Vanished:
        if self.requirements:
            self.env = self._install(self.requirements, f"{self.id}-start")
        return start_kernel(
            self.provider, self.id, self.limits, self.request, self.env, self.image, self.generation
        )

    def _install(self, requirements: list[str], run_id: str) -> CachedEnv:
        return install_env(
            self.provider.environments, requirements, self.image, run_id, self.settings
        )

    def close(
        self, status: SessionStatus = SessionStatus.CLOSED, reason: str | None = None
    ) -> None:
        """End the session and remove its container (also while a cell runs). Idempotent."""
        if self.status not in (SessionStatus.STARTING, SessionStatus.IDLE, SessionStatus.BUSY):
            return
        self.status, self.error = status, reason
        wire, self._wire = self._wire, None
        if wire is not None:
            wire.close()
        cache = self.provider.environments
        if self.env is not None and cache is not None:
            cache.release(self.env.key)
        self._log.info("session {}{}", status.value, f": {reason}" if reason else "")

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls ----------------------------------------------------------------------
    def _begin(self) -> SessionWire:
        if self._wire is None or self.status not in (SessionStatus.IDLE, SessionStatus.BUSY):
            raise SessionGone.ended(self.id, self.status.value)
        if not self._call.acquire(blocking=False):
            raise SessionBusy(f"session {self.id} is busy with another call", session_id=self.id)
        self.status = SessionStatus.BUSY
        self.last_activity_at = _now()
        return self._wire

    def _end(self) -> None:
        if self.status == SessionStatus.BUSY:
            self.status = SessionStatus.IDLE
        self.last_activity_at = _now()
        self._call.release()

    def _lost(self, exc: SessionGone) -> SessionGone:
        self.close(SessionStatus.LOST, str(exc))
        return exc

    def _ack(
        self,
        wire: SessionWire,
        op: str,
        deadline_s: float = OP_WAIT_S,
        on_frame: Callable[[Frame], None] | None = None,
    ) -> AckFrame:
        for frame in wire.frames(time.monotonic() + deadline_s):
            if isinstance(frame, KernelFrame):
                self.generation = frame.generation
            elif isinstance(frame, AckFrame) and frame.op == op:
                return frame
            elif on_frame is not None:
                on_frame(frame)
        raise AssertionError("unreachable: frames() raises at its deadline")

    def call(
        self,
        message: dict[str, Any],
        payload: bytes | Iterable[bytes] = b"",
        deadline_s: float = OP_WAIT_S,
        on_frame: Callable[[Frame], None] | None = None,
    ) -> AckFrame:
        """One operation other than a cell, answered by its ack; ``on_frame`` sees the
        frames before it (a download's artifact frames)."""
        wire = self._begin()
        try:
            wire.send(message, payload)
            return self._ack(wire, str(message["op"]), deadline_s, on_frame)
        except SessionGone as exc:
            raise self._lost(exc) from None
        finally:
            self._end()

    def run(
        self,
        code: str,
        *,
        timeout_s: float | None = None,
        on_event: EventHandler | None = None,
        artifacts_dir: Path | None = None,
    ) -> CellResult:
        """Run one cell. Bad code is a status in the result, never an exception.

        Raises:
            SessionBusy: another call is in progress.
            SessionGone: the session ended (before or during the cell).
            RequestRejected: the code or the timeout breaks a server limit.
        """
        limit = resolve_run(
            RunRequest(code=code, timeout_s=timeout_s or self.limits.timeout_s), self.settings
        )
        wire = self._begin()
        self._in_cell = True
        started = time.monotonic()
        try:
            self.execution_count += 1
            count = self.execution_count
            collector = CellCollector(self.settings, self.id, count, artifacts_dir, on_event)
            wire.send({"op": "cell", "code": code, "count": count, "timeout_s": limit.timeout_s})
            deadline = (
                time.monotonic() + limit.timeout_s + self.settings.interrupt_grace_s + CELL_SLACK_S
            )
            for frame in wire.frames(deadline):
                if isinstance(frame, KernelFrame):
                    self.generation = frame.generation
                done = collector.handle(frame)
                if done is not None:
                    self.generation = done.generation
                    report, self.restore_pending = self.restore_pending, None
                    return restored(collector.result(done, time.monotonic() - started), report)
            raise AssertionError("unreachable: frames() raises at its deadline")
        except SessionGone as exc:
            raise self._lost(exc) from None
        finally:
            self._in_cell = False
            self._end()

    @property
    def wire(self) -> SessionWire | None:
        return self._wire

    def interrupt(self) -> bool:
        """Interrupt the running cell (SIGINT, then a kill after the grace period); False when
        no cell runs."""
        wire = self._wire
        if wire is None or not self._in_cell:
            return False
        try:
            wire.send({"op": "interrupt"})
        except SessionGone as exc:
            raise self._lost(exc) from None
        return True

    def restart(self) -> int:
        """A fresh kernel: every variable is lost, files stay. Returns the new generation."""
        ack = self.call({"op": "restart"})
        self.generation = ack.generation or self.generation + 1
        return self.generation

    def install(self, requirements: list[str]) -> PackagesResult:
        """Add requirements: the union installs in the cache's own sandbox, then goes on the path.

        Raises:
            InstallFailed: the union does not install; the session is unchanged.
        """
        wire = self._begin()
        try:
            union = self.requirements + [r for r in requirements if r not in self.requirements]
            new_env = self._install(union, f"{self.id}-install-{uuid.uuid4().hex[:6]}")
            old_env = self.env
            added, changed, removed = package_diff(old_env, new_env)
            watch = [c.name for c in changed] + [p.name for p in removed]
            message = {
                "op": "env",
                "add": [new_env.path],
                "remove": [old_env.path] if old_env is not None else [],
                "watch": watch,
            }
            wire.send(message)
            ack = self._ack(wire, "env")
            self.env, self.requirements = new_env, union
            cache = self.provider.environments
            if old_env is not None and cache is not None:
                cache.release(old_env.key)
            report = InstallReport(
                requirements=union,
                packages=list(new_env.packages),
                installer=new_env.installer,
                fallback_triggered=new_env.fallback_triggered,
                mode="cache",
            )
            return PackagesResult(
                requirements=union,
                added=added,
                changed=changed,
                removed=removed,
                restart_required=bool(ack.imported),
                install=report,
            )
        except SessionGone as exc:
            raise self._lost(exc) from None
        finally:
            self._end()

    # -- files ----------------------------------------------------------------------
    def upload(self, path: str, data: bytes) -> str:
        """Put ``data`` at ``path`` under the working directory (replacing a file there).

        Raises:
            RequestRejected: an unsafe path, or one the runner cannot write (a parent is a file).
            RequestTooLarge: over the per-file input cap.
        """
        try:
            rel = normalise_relative_path(path)
        except ValueError as exc:
            raise RequestRejected("path", str(exc)) from exc
        if len(data) > self.settings.max_input_file_bytes:
            raise RequestTooLarge("file", f"larger than {self.settings.max_input_file_bytes} bytes")
        deadline = OP_WAIT_S + len(data) / UPLOAD_BYTES_PER_S
        ack = self.call({"op": "put", "path": rel, "size": len(data)}, data, deadline)
        if not ack.ok:
            raise RequestRejected("path", f"cannot write {rel}: {ack.error}")
        return rel

    def download(self, path: str | Artifact) -> bytes:
        """The bytes of a file under the working directory (checked: size and sha256); an
        artifact of a cell is found at its `Artifact.file_path`.

        Raises:
            FileNotFound: no such file.
            RequestRejected: an unsafe path, not a regular file, or over the artifact cap.
        """
        where = path.file_path if isinstance(path, Artifact) else path
        with tempfile.TemporaryDirectory(prefix="ai-data-agent-download-") as folder:
            return self.fetch(
                where, Path(folder), self.settings.max_artifact_total_bytes
            ).read_bytes()

    def fetch(self, path: str, folder: Path, max_bytes: int) -> Path:
        """Copy a file under the working directory to ``folder`` (at its relative path,
        checked: size and sha256), streamed; the local file.

        Raises:
            FileNotFound: no such file.
            RequestRejected: an unsafe path, not a regular file, or larger than ``max_bytes``.
        """
        try:
            rel = normalise_relative_path(path)
        except ValueError as exc:
            raise RequestRejected("path", str(exc)) from exc
        collector = ArtifactCollector(folder, 1, max_bytes)

        def receive(frame: Frame) -> None:
            if isinstance(frame, ArtifactBegin | ArtifactData | ArtifactEnd):
                collector.handle(frame)

        message = {"op": "get", "path": rel, "max_bytes": max_bytes}
        try:
            ack = self.call(
                message, deadline_s=OP_WAIT_S + max_bytes / UPLOAD_BYTES_PER_S, on_frame=receive
            )
            collector.finish(None)
        finally:
            collector.close()
        if not ack.ok or not collector.artifacts:
            reason = ack.error or (collector.skipped[0].reason if collector.skipped else "?")
            if reason == "no such file":  # the runner's word (sandbox/files.download)
                raise FileNotFound(f"no file {rel} in the session", path=rel)
            raise RequestRejected("path", f"cannot read {rel}: {reason}")
        return folder / rel

    def files(self) -> list[SessionFile]:
        """Regular files under the working directory (at most 1000)."""
        ack = self.call({"op": "ls"})
        return [
            SessionFile(
                path=f.path, size=f.size, modified_at=datetime.fromtimestamp(f.modified, UTC)
            )
            for f in ack.files
        ]

    def info(self) -> SessionInfo:
        packages = list(self.env.packages) if self.env is not None else []
        return SessionInfo(
            id=self.id,
            status=self.status,
            created_at=self.created_at,
            last_activity_at=self.last_activity_at,
            generation=self.generation,
            execution_count=self.execution_count,
            requirements=list(self.requirements),
            packages=packages,
            image=self.image,
            memory_mb=self.limits.memory_mb,
            cpus=self.limits.cpus,
            error=self.error,
            datasets=list(self.request.datasets),
            checkpoint=self.checkpoint_seq,
            restore=self.restore_report,
        )
