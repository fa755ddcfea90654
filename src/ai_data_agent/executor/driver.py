"""The sandbox driver: one `Assignment` (spec, job, inputs) through one container, start to removal.

    driver = SandboxDriver(settings, backend, pool)
    transcript = driver.drive(Assignment(spec, job, inputs), run_id=run_id)
    driver.close()              # waits for removals deferred to the background

A sandbox comes from the warm pool when one with the same profile waits there,
else it is started (`delivery.launch`). The driver sends the job, the input
files and, for installs, the uv binary; `Conversation` then reads frames under
the controller's deadlines. The container is removed in every path; with
``defer_removal`` a sandbox that ended cleanly is removed in the background
after the caller has its answer. Both `Executor` and `EnvCache` drive their
sandboxes through here.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.artifacts import ArtifactCollector
from ai_data_agent.executor.backend import Backend, Sandbox
from ai_data_agent.executor.conversation import Budget, Conversation, Transcript
from ai_data_agent.executor.delivery import launch
from ai_data_agent.executor.events import EventHandler
from ai_data_agent.executor.jobs import Job
from ai_data_agent.executor.pool import WarmPool
from ai_data_agent.executor.protocol import encode_message, new_token
from ai_data_agent.executor.spec import ContainerSpec
from ai_data_agent.settings import Settings

__all__ = ["Assignment", "SandboxDriver"]

UV_CHUNK = 1024 * 1024
REMOVAL_THREADS = 2


@dataclass(frozen=True)
class Assignment:
    """What one sandbox does: its container, its job, and the bytes that follow the job."""

    spec: ContainerSpec
    job: Job
    inputs: Sequence[bytes] = ()
    ship_uv: bool = False
    code_timeout_s: float = 0.0


class SandboxDriver:
    """Drives sandboxes through their conversation. Thread-safe."""

    def __init__(self, settings: Settings, backend: Backend, pool: WarmPool | None = None) -> None:
        self.settings = settings
        self.backend = backend
        self.pool = pool
        self._removals = ThreadPoolExecutor(REMOVAL_THREADS, thread_name_prefix="remove")
        self._lock = threading.Lock()

    def close(self) -> None:
        """Finish deferred removals; the driver stays usable."""
        with self._lock:
            removals = self._removals
            self._removals = ThreadPoolExecutor(REMOVAL_THREADS, thread_name_prefix="remove")
        removals.shutdown(wait=True)

    def drive(
        self,
        assignment: Assignment,
        *,
        run_id: str,
        on_event: EventHandler | None = None,
        cancel: threading.Event | None = None,
        artifacts_dir: Path | None = None,
        defer_removal: bool = False,
    ) -> Transcript:
        """Run ``assignment`` in a sandbox; the container is gone (or going) on return.

        Raises:
            ExecutorError: Docker or the host failed; the container is removed anyway.
        """
        logger.bind(run_id=run_id)
        token = new_token()
        uv_path = self.settings.uv_path() if assignment.ship_uv else None
        job = assignment.job.model_copy(deep=True)
        job.token = token
        if uv_path is not None:
            job.install.uv_size = uv_path.stat().st_size
        collector = ArtifactCollector(
            artifacts_dir, self.settings.max_artifacts, self.settings.max_artifact_total_bytes
        )
        transcript = Transcript.empty(self.settings, collector)
        sandbox = self.sandbox(assignment.spec, run_id)
        deferred = False
        try:
            sandbox.send(encode_message(job.encode()))
            for blob in assignment.inputs:
                sandbox.send(blob)
            if uv_path is not None:
                _send_file(sandbox, uv_path)
            budget = Budget.for_job(self.settings, assignment.code_timeout_s)
            Conversation(
                sandbox,
                token,
                budget,
                transcript,
                run_id=run_id,
                detach_network=assignment.spec.detach_network_before_code,
                on_event=on_event,
                cancel=cancel,
            ).run(return_at_result=defer_removal)
            deferred = defer_removal and transcript.finished_cleanly
        finally:
            self.settled(sandbox)
            collector.close()
            if deferred:
                self._remove_later(sandbox, run_id)
            else:
                _remove(sandbox, run_id)
        return transcript

    def sandbox(self, spec: ContainerSpec, run_id: str) -> Sandbox:
        """A started sandbox with its runner loaded: from the warm pool, else a fresh one."""
        log = logger.bind(run_id=run_id)
        sandbox = self.pool.take(spec) if self.pool is not None else None
        if sandbox is not None:
            log.debug("container {} taken from the warm pool", sandbox.container_id[:12])
            return sandbox
        sandbox = launch(self.backend, spec, run_id)
        log.debug("container {} started from {}", sandbox.container_id[:12], spec.image)
        return sandbox

    def settled(self, sandbox: Sandbox) -> None:
        """``sandbox`` is past its start; the warm pool may refill (see `WarmPool.settled`)."""
        if self.pool is not None:
            self.pool.settled(sandbox)

    def _remove_later(self, sandbox: Sandbox, run_id: str) -> None:
        with self._lock:
            self._removals.submit(_remove, sandbox, run_id)


def _send_file(sandbox: Sandbox, path: Path) -> None:
    with path.open("rb") as fh:
        while chunk := fh.read(UV_CHUNK):
            sandbox.send(chunk)


def _remove(sandbox: Sandbox, run_id: str) -> None:
    try:
        sandbox.remove()
    except ExecutorError as exc:
        # Never mask the first error; the retries and the sweep will find it by label.
        logger.bind(run_id=run_id).warning("cleanup failed: {}", exc)
