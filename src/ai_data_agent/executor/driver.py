"""The sandbox driver: opens a sandbox for a job (warm pool or fresh) and drives one-shot jobs to the end.

    driver = SandboxDriver(settings, backend, pool)
    link = driver.open(spec, job, run_id=run_id, inputs=files)    # a session's kernel
    transcript = driver.drive(Assignment(spec, job, inputs), run_id=run_id)   # a run, an install
    driver.close()              # waits for removals deferred to the background

A sandbox comes from the warm pool when one with the same profile waits there
(for a run or session of a cached set, one that imported the set's modules
first, else a plain one), else it is started (`delivery.launch`). A run or session with an egress
allow-list gets its lease on the egress proxy here, before its container is
made (the lease's folder of sockets is bind-mounted into it, so such a
sandbox is always a fresh one); the lease is the link's and closes with it.
`open` sends the job with a fresh frame token, the input files and, for
installs, the uv binary, and hands back the `link.SandboxLink` that reads its
frames: a session keeps it for its life; `drive` has `Conversation` read it
under the controller's deadlines and removes the container in every path.
With ``defer_removal`` a sandbox that ended cleanly is removed in the
background after the caller has its answer (its tunnels end at once).
`Executor` (runs, sessions) and `EnvCache` (its own sandboxes) open theirs here.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from loguru import logger

from ai_data_agent.egress.proxy import EgressLease, EgressProxy
from ai_data_agent.errors import AiDataAgentError, ExecutorError
from ai_data_agent.executor.artifacts import ArtifactCollector
from ai_data_agent.executor.backend import Backend, Sandbox
from ai_data_agent.executor.conversation import Budget, Conversation, Transcript
from ai_data_agent.executor.delivery import launch
from ai_data_agent.executor.events import EventHandler
from ai_data_agent.executor.jobs import EgressJob, Job
from ai_data_agent.executor.link import SandboxLink
from ai_data_agent.executor.pool import WarmPool
from ai_data_agent.executor.protocol import encode_message, new_token
from ai_data_agent.executor.spec import EGRESS_MOUNT, ContainerSpec
from ai_data_agent.executor.warm import Warmth
from ai_data_agent.models import EgressRequest
from ai_data_agent.settings import Settings

__all__ = ["Assignment", "SandboxDriver"]

UV_CHUNK = 1024 * 1024
REMOVAL_THREADS = 2
# How long a run's runner stays after its result, for its CPU to be read; it is removed
# right after, so this bounds only a controller that died in between.
HOLD_S = 30.0


@dataclass(frozen=True)
class Assignment:
    """What one sandbox does: its container, its job, the bytes that follow the job, and
    the hosts it reaches through the egress proxy."""

    spec: ContainerSpec
    job: Job
    inputs: Sequence[bytes] = ()
    ship_uv: bool = False
    code_timeout_s: float = 0.0
    egress: EgressRequest | None = None


class SandboxDriver:
    """Opens sandboxes and drives one-shot jobs through their conversation. Thread-safe.

    ``egress`` is the proxy that serves sandboxes with an allow-list (None: egress is off).
    """

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        pool: WarmPool | None = None,
        egress: EgressProxy | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.pool = pool
        self.egress = egress
        self._removals = ThreadPoolExecutor(REMOVAL_THREADS, thread_name_prefix="remove")
        self._lock = threading.Lock()

    def close(self) -> None:
        """Finish deferred removals; the driver stays usable."""
        with self._lock:
            removals = self._removals
            self._removals = ThreadPoolExecutor(REMOVAL_THREADS, thread_name_prefix="remove")
        removals.shutdown(wait=True)

    def open(
        self,
        spec: ContainerSpec,
        job: Job,
        *,
        run_id: str,
        inputs: Sequence[bytes] = (),
        ship_uv: bool = False,
        egress: EgressRequest | None = None,
    ) -> SandboxLink:
        """A started sandbox (pooled or fresh) with ``job``, under a new frame token, and the
        bytes that follow it sent; the caller settles and removes it. With ``egress``, the
        sandbox reaches those hosts through the egress proxy until the link is removed.

        Raises:
            ExecutorError: Docker or the host failed, or the egress proxy cannot serve the
                sandbox; nothing is left behind.
        """
        token = new_token()
        uv_path = self.settings.uv_path() if ship_uv else None
        job = job.model_copy(deep=True)
        job.token = token
        if uv_path is not None:
            job.install.uv_size = uv_path.stat().st_size
        lease = self._lease(egress, run_id) if egress is not None else None
        try:
            if lease is not None:
                spec = replace(spec, egress_dir=lease.host_dir)
                job.egress = EgressJob(dir=EGRESS_MOUNT, publish=sorted(lease.publish))
            sandbox, pooled = self._sandbox(spec, run_id, self._warmth(job))
        except BaseException:
            if lease is not None:
                lease.close()
            raise
        mark = sandbox.cpu_ns() if pooled else 0  # a pooled one's warm-up is not charged
        link = SandboxLink(sandbox, token, run_id, self.pool, egress=lease, cpu_mark_ns=mark)
        try:
            link.send(encode_message(job.encode()))
            for blob in inputs:
                link.send(blob)
            if uv_path is not None:
                _send_file(link, uv_path)
        except BaseException:
            link.settled()
            link.remove()
            raise
        return link

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
        held = assignment.job.mode == "run"  # its CPU is charged: read before it goes
        job = assignment.job.model_copy(update={"hold_s": HOLD_S}) if held else assignment.job
        link = self.open(
            assignment.spec,
            job,
            run_id=run_id,
            inputs=assignment.inputs,
            ship_uv=assignment.ship_uv,
            egress=assignment.egress,
        )
        collector = ArtifactCollector(
            artifacts_dir, self.settings.max_artifacts, self.settings.max_artifact_total_bytes
        )
        transcript = Transcript.empty(self.settings, collector)
        deferred = False
        try:
            Conversation(
                link,
                Budget.for_job(self.settings, assignment.code_timeout_s),
                transcript,
                detach_network=assignment.spec.detach_network_before_code,
                on_event=on_event,
                cancel=cancel,
                held=held,
            ).run(return_at_result=defer_removal)
            deferred = defer_removal and transcript.finished_cleanly
        finally:
            link.settled()
            collector.close()
            link.close_egress()  # the run's tunnels end with it, not with a deferred removal
            if deferred:
                self._remove_later(link)
            else:
                link.remove()
        return transcript

    def _lease(self, egress: EgressRequest, run_id: str) -> EgressLease:
        """The sandbox's lease on the egress proxy: its sockets, listening.

        Raises:
            ExecutorError: egress is off here, or the proxy cannot listen.
        """
        if self.egress is None:
            raise ExecutorError(
                "an egress allow-list was granted, but this executor has no egress proxy",
                run_id=run_id,
                step="egress",
            )
        try:
            return self.egress.open(run_id, allow=egress.allow, publish=egress.publish)
        except (AiDataAgentError, ValueError) as exc:
            raise ExecutorError(f"cannot open egress: {exc}", run_id=run_id, step="egress") from exc

    def _warmth(self, job: Job) -> Warmth | None:
        """The pre-imported pool profile ``job`` may take: a run or a session of a cached
        environment with nothing to install and no variables of its own (its code
        interpreter started without them); the runner checks the same again."""
        if job.mode not in ("run", "session") or not job.env_paths:
            return None
        if job.exec_env or not job.install.skip:
            return None
        modules = self.settings.pool_preimport
        return Warmth(tuple(job.env_paths), tuple(modules) if modules is not None else None)

    def _sandbox(
        self, spec: ContainerSpec, run_id: str, warmth: Warmth | None
    ) -> tuple[Sandbox, bool]:
        """A started sandbox with its runner loaded: from the warm pool (pre-imported with
        ``warmth``'s environment, else plain), else a fresh one; and whether it was pooled."""
        log = logger.bind(run_id=run_id)
        sandbox = self.pool.take(spec, warmth) if self.pool is not None else None
        if sandbox is not None:
            log.debug("container {} taken from the warm pool", sandbox.container_id[:12])
            return sandbox, True
        sandbox = launch(self.backend, spec, run_id)
        log.debug("container {} started from {}", sandbox.container_id[:12], spec.image)
        return sandbox, False

    def _remove_later(self, link: SandboxLink) -> None:
        with self._lock:
            self._removals.submit(link.finish)


def _send_file(link: SandboxLink, path: Path) -> None:
    with path.open("rb") as fh:
        while chunk := fh.read(UV_CHUNK):
            link.send(chunk)
