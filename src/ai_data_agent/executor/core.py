"""The executor: one request in, one fresh container, one `RunResult` out.

    executor = Executor(Settings())
    result = executor.run(RunRequest(code="print('hi')"))

`Executor.run` validates the request, starts a sandbox through the backend,
speaks the runner protocol with it under the controller's own deadlines, and
removes the container in every path (success, failure, timeout, Ctrl-C).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.artifacts import ArtifactCollector
from ai_data_agent.executor.backend import STDERR, STDOUT, Backend, ExitState, Session
from ai_data_agent.executor.envcache import CachedEnv, DriveOutcome, EnvCache, InstallFailed
from ai_data_agent.executor.pool import WarmPool
from ai_data_agent.executor.protocol import FrameReader, encode_job, new_token
from ai_data_agent.executor.spec import ContainerSpec, VolumeMount, build_spec
from ai_data_agent.models import (
    EnvironmentInfo,
    InstallReport,
    Limits,
    PackageInfo,
    RunRequest,
    RunResult,
    RunStatus,
    Timings,
)
from ai_data_agent.settings import Settings

__all__ = ["Executor", "RunEvent"]

# The runner's verify step gets this long between "ready" and "running", and
# artifact collection as long after the code ends.
VERIFY_BUDGET_S = 60.0
COLLECT_BUDGET_S = 60.0
# How long the runner gets to exit after its result before it is killed.
EXIT_WAIT_S = 1.0
# Bytes kept of the container's own stderr (the runner's crash output, if any).
RUNNER_STDERR_LIMIT = 64 * 1024


@dataclass(frozen=True)
class RunEvent:
    """Progress of a run: ``phase`` (installing, ready, running) or ``stdout``/``stderr`` text."""

    run_id: str
    kind: str
    data: str


EventHandler = Callable[[RunEvent], None]


@dataclass
class _Transcript:
    """What the controller collected from one sandbox, bounded at every step."""

    stdout_limit: int
    stderr_limit: int
    phase: str = "starting"
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    stdout_size: int = 0
    stderr_size: int = 0
    stdout_cut: bool = False
    stderr_cut: bool = False
    result: dict[str, Any] | None = None
    artifacts: ArtifactCollector | None = None
    runner_stderr: bytearray = field(default_factory=bytearray)
    deadline_hit: str | None = None  # the phase in which the controller killed it

    def add_output(self, stream: str, text: str) -> str:
        """Append within the cap (UTF-8 bytes; one raw byte decodes to <= 3); return what was kept."""
        size = len(text.encode())
        if stream == "stdout":
            room = self.stdout_limit * 3 - self.stdout_size
            kept = text if size <= room else text.encode()[: max(room, 0)].decode("utf-8", "ignore")
            self.stdout.append(kept)
            self.stdout_size += len(kept.encode())
            self.stdout_cut |= kept != text
        else:
            room = self.stderr_limit * 3 - self.stderr_size
            kept = text if size <= room else text.encode()[: max(room, 0)].decode("utf-8", "ignore")
            self.stderr.append(kept)
            self.stderr_size += len(kept.encode())
            self.stderr_cut |= kept != text
        return kept


class Executor:
    """Runs requests in fresh sandbox containers. Thread-safe; one per process is enough.

    With the default Docker backend it also keeps the environment cache (see
    `envcache`) and, when ``settings.pool_size`` > 0, a warm pool (see `pool`).
    Call `close` (or use it as a context manager) to drain the pool.
    """

    def __init__(
        self,
        settings: Settings,
        backend: Backend | None = None,
        *,
        env_cache: EnvCache | None = None,
    ) -> None:
        self.settings = settings
        self.controller_id = uuid.uuid4().hex[:12]
        if backend is None:
            from ai_data_agent.executor.docker_backend import DockerBackend

            docker_backend = DockerBackend(settings)
            backend = docker_backend
            if env_cache is None and settings.install_mode == "cache":
                env_cache = EnvCache(settings, docker_backend, self._drive_job, self.controller_id)
        self.backend = backend
        self.env_cache = env_cache
        self.pool = (
            WarmPool(backend, size=settings.pool_size, ttl_s=settings.pool_ttl_s)
            if settings.pool_size > 0
            else None
        )
        self._pool_started = False
        self._pool_lock = threading.Lock()
        self._removals = ThreadPoolExecutor(max_workers=2, thread_name_prefix="remove")

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drain the warm pool, finish deferred removals (nothing left behind) and
        close the engine connection.

        Idempotent; the executor stays usable (it reconnects, without a pool).
        """
        if self.pool is not None:
            self.pool.close()
        self._removals.shutdown(wait=True)
        self._removals = ThreadPoolExecutor(max_workers=2, thread_name_prefix="remove")
        self.backend.close()

    def start_pool(self) -> None:
        """Fill the warm pool now rather than at the first run (a daemon does this at start)."""
        if self.pool is None:
            return
        with self._pool_lock:
            if self._pool_started:
                return
            self._pool_started = True
        image = self.backend.resolve_image()
        if self.env_cache is not None:
            self.env_cache.prepare()
        defaults = RunRequest(code="").resolve(self.settings)
        mounts = self.env_cache.run_mounts() if self.env_cache is not None else ()

        def make_spec(pool_id: str) -> ContainerSpec:
            return build_spec(
                self.settings, defaults, image=image, run_id=pool_id,
                controller_id=self.controller_id, needs_install=False, mounts=mounts,
                extra_lifetime_s=self.settings.pool_ttl_s + self.settings.max_timeout_s,
            )  # fmt: skip

        self.pool.add_profile(make_spec)

    # -- public -------------------------------------------------------------------
    def run(
        self,
        request: RunRequest,
        *,
        run_id: str | None = None,
        on_event: EventHandler | None = None,
        cancel: threading.Event | None = None,
        artifacts_dir: Path | None = None,
        _retried: bool = False,
    ) -> RunResult:
        """Run ``request`` in a fresh container and return its result.

        ``on_event`` sees phases and output as they happen (on this thread);
        setting ``cancel`` kills the container and gives status ``cancelled``.
        Files the code leaves under ``outputs/`` are listed in the result and,
        when ``artifacts_dir`` is given, written there (checked, never followed).

        Raises:
            RequestRejected: the request breaks a server limit (nothing started).
            ConfigurationError: the sandbox image cannot be had.
            ExecutorError: Docker or the host failed; the container is gone anyway.
        """
        limits = request.resolve(self.settings)
        run_id = run_id or uuid.uuid4().hex
        log = logger.bind(run_id=run_id)
        started = time.monotonic()
        image = self.backend.resolve_image()
        if self.pool is not None:
            self.start_pool()
        mode = request.install_mode or self.settings.install_mode
        cache = self.env_cache if mode == "cache" else None
        cached: CachedEnv | None = None
        cache_hit = False
        if request.requirements and cache is not None:
            if on_event is not None:
                on_event(RunEvent(run_id, "phase", "installing"))
            try:
                cached, cache_hit = cache.get_or_install(list(request.requirements), image, run_id)
            except InstallFailed as failed:
                result = self._install_failed(run_id, image, request, failed)
                result.timings.total_s = round(time.monotonic() - started, 4)
                log.info("run finished: status={} ({})", result.status, failed.reason)
                return result
        mounts: tuple[VolumeMount, ...] = ()
        if self.env_cache is not None:  # every sandbox mounts it: one profile with the pool
            self.env_cache.prepare()  # else Docker would create the volume root-owned
            mounts = self.env_cache.run_mounts()
        spec = build_spec(
            self.settings, limits, image=image, run_id=run_id, controller_id=self.controller_id,
            needs_install=bool(request.requirements) and cached is None, mounts=mounts,
        )  # fmt: skip
        job = self._job(request, limits, cached, mode)
        blobs = [item.data for item in request.files]
        with cache.using(cached.key) if cached is not None and cache is not None else nullcontext():
            transcript, exit_state = self._drive(
                spec, job, blobs, limits, run_id, on_event, cancel, artifacts_dir, uv=False,
                defer=self.pool is not None,  # the latency mode: return at the result
            )  # fmt: skip
        if (
            cached is not None
            and cache is not None
            and (transcript.result or {}).get("env_missing")
        ):
            if _retried:
                raise ExecutorError(
                    "the cached environment vanished twice", run_id=run_id, step="install"
                )
            log.warning("cached environment {} is gone from the volume; installing again",
                        cached.key[:12])  # fmt: skip
            cache.forget(cached.key)
            return self.run(request, run_id=run_id, on_event=on_event, cancel=cancel,
                            artifacts_dir=artifacts_dir, _retried=True)  # fmt: skip
        result = self._result(run_id, image, request, transcript, exit_state)
        if cached is not None:
            result.install.cache_hit = cache_hit
            result.install.mode = "cache"
            result.install.packages = list(cached.packages)
            result.install.installer = cached.installer
            result.install.fallback_triggered = cached.fallback_triggered and not cache_hit
            result.install.log_tail = "" if cache_hit else cached.log_tail
            result.timings.install_s = 0.0 if cache_hit else round(cached.install_s, 4)
        elif request.requirements:
            result.install.mode = "per_run"
        result.timings.total_s = round(time.monotonic() - started, 4)
        log.info(
            "run finished: status={} exit_code={} install_s={:.2f} execute_s={:.2f} total_s={:.2f}"
            " cache_hit={}",
            result.status, result.exit_code, result.timings.install_s, result.timings.execute_s,
            result.timings.total_s, result.install.cache_hit,
        )  # fmt: skip
        return result

    # -- containers ---------------------------------------------------------------
    def _drive(
        self,
        spec: ContainerSpec,
        job: dict[str, Any],
        blobs: list[bytes],
        limits: Limits,
        run_id: str,
        on_event: EventHandler | None,
        cancel: threading.Event | None,
        artifacts_dir: Path | None,
        *,
        uv: bool,
        defer: bool = False,
    ) -> tuple[_Transcript, ExitState]:
        """One sandbox, start to removal: job in, frames out, deadlines enforced.

        With ``defer``, a sandbox that ended cleanly is removed in the background.
        """
        log = logger.bind(run_id=run_id)
        token = new_token()
        job = dict(job, token=token)
        uv_path = self.settings.uv_path() if uv else None
        if uv_path is not None:
            job["install"] = dict(job.get("install") or {}, uv_size=uv_path.stat().st_size)
        transcript = _Transcript(self.settings.stdout_limit_bytes, self.settings.stderr_limit_bytes)
        transcript.artifacts = ArtifactCollector(
            artifacts_dir, self.settings.max_artifacts, self.settings.max_artifact_total_bytes
        )
        deferred = False
        session = self.pool.take(spec) if self.pool is not None else None
        if session is None:
            session = self.backend.start(spec, run_id)
            log.debug("container {} started from {}", session.container_id[:12], spec.image)
        else:
            log.debug("container {} taken from the warm pool", session.container_id[:12])
        try:
            session.send(encode_job(job))
            for blob in blobs:
                session.send(blob)
            if uv_path is not None:
                with uv_path.open("rb") as fh:
                    while chunk := fh.read(1024 * 1024):
                        session.send(chunk)
            exit_state = self._converse(session, spec.detach_network_before_code, limits, token,
                                        transcript, run_id, on_event, cancel,
                                        defer_exit=defer)  # fmt: skip
            # The runner ended cleanly: with the pool (the latency mode) its container
            # is removed after the result is returned; `close` waits for that.
            deferred = defer and _finished_cleanly(transcript)
        finally:
            transcript.artifacts.close()
            if deferred:
                self._removals.submit(_remove, session, log)
            else:
                _remove(session, log)
        return transcript, exit_state

    def _drive_job(
        self,
        job: dict[str, Any],
        *,
        mounts: tuple[VolumeMount, ...],
        needs_network: bool,
        run_id: str,
        uv: bool = False,
    ) -> DriveOutcome:
        """An internal job (install, publish, prune, probe) in its own locked-down sandbox."""
        limits = RunRequest(code="").resolve(self.settings)
        spec = build_spec(
            self.settings, limits, image=self.backend.resolve_image(), run_id=run_id,
            controller_id=self.controller_id, needs_install=needs_network, mounts=mounts,
        )  # fmt: skip
        full = self._job(RunRequest(code=str(job.get("code", ""))), limits, None, "per_run")
        full.update(job)
        if "requirements" in job:
            full["requirements"] = _requirement_entries(job["requirements"])
        transcript, exit_state = self._drive(
            spec, full, [], limits, run_id, None, None, None, uv=uv
        )
        status, error = classify(transcript, exit_state)
        frame = transcript.result
        failed = frame is None or status in (RunStatus.ERROR, RunStatus.TIMED_OUT,
                                             RunStatus.MEMORY_EXCEEDED)  # fmt: skip
        return DriveOutcome(
            frame=frame, stdout="".join(transcript.stdout), error=error if failed else None
        )

    # -- protocol -----------------------------------------------------------------
    def _job(
        self, request: RunRequest, limits: Limits, cached: CachedEnv | None, mode: str
    ) -> dict[str, Any]:
        s = self.settings
        if cached is not None:
            install: dict[str, Any] = {"skip": True}
        else:
            # The seed's per-run install: pip into the sandbox dir.
            install = {"installer": "pip", "only_binary": not s.allow_sdists}
        return {
            "mode": "run",
            "code": request.code,
            "requirements": _requirement_entries(request.requirements),
            "install": install,
            "env_paths": [cached.path] if cached is not None else [],
            "timeout_s": limits.timeout_s,
            "network": limits.network,
            "exec_env": request.env,
            "stdout_limit": s.stdout_limit_bytes,
            "stderr_limit": s.stderr_limit_bytes,
            "output_policy": s.output_policy,
            "install_timeout_s": s.install_timeout_s,
            "install_log_limit": s.install_log_limit_bytes,
            "index_url": s.pip_index_url,
            "files": [{"path": f.path, "size": len(f.data)} for f in request.files],
            "artifacts": {
                "max_count": s.max_artifacts,
                "max_total_bytes": s.max_artifact_total_bytes,
            },
        }

    def _install_failed(
        self, run_id: str, image: str, request: RunRequest, failed: InstallFailed
    ) -> RunResult:
        report = failed.report
        return RunResult(
            id=run_id,
            status=RunStatus.INSTALL_FAILED,
            install=InstallReport(
                requirements=list(request.requirements),
                installer=str(report.get("installer", "pip")),
                fallback_triggered=bool(report.get("fallback_triggered")),
                log_tail=str(report.get("log_tail", ""))[-self.settings.install_log_limit_bytes :],
                mode="cache",
            ),
            timings=Timings(install_s=round(_float(report.get("duration_s")), 4)),
            image=image,
            error=failed.reason[:2000],
        )

    def _converse(
        self,
        session: Session,
        detach_network: bool,
        limits: Limits,
        token: str,
        transcript: _Transcript,
        run_id: str,
        on_event: EventHandler | None,
        cancel: threading.Event | None,
        *,
        defer_exit: bool = False,
    ) -> ExitState:
        """Read frames until the runner is done or a deadline passes.

        With ``defer_exit``, return at a clean result frame without waiting for
        the container to stop (its removal will be deferred too).
        """
        s = self.settings
        log = logger.bind(run_id=run_id)
        reader = FrameReader(token)
        # Worst case of the runner's framing: JSON-escaped output (<= 6x) plus logs.
        stream_budget = 8 * (
            s.stdout_limit_bytes + s.stderr_limit_bytes + s.install_log_limit_bytes
        )
        stream_budget += s.max_artifact_total_bytes * 4 // 3 + 4 * 1024 * 1024
        received = 0
        deadline = time.monotonic() + s.install_timeout_s + s.stop_grace_s + 30

        def emit(kind: str, data: str) -> None:
            if on_event is not None:
                on_event(RunEvent(run_id, kind, data))

        while transcript.result is None:
            if cancel is not None and cancel.is_set():
                transcript.deadline_hit = "cancelled"
                log.info("cancelled in phase {}; killing the sandbox", transcript.phase)
                session.kill()
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                transcript.deadline_hit = transcript.phase
                log.info("deadline passed in phase {}; killing the sandbox", transcript.phase)
                session.kill()
                break
            chunk = session.read(min(remaining, 0.25))
            if chunk is None:
                continue
            stream, data = chunk
            if not data:
                break  # end of stream: the container exited
            received += len(data)
            if received > stream_budget:
                log.warning("sandbox sent more than {} bytes; killing it", stream_budget)
                transcript.deadline_hit = "stream"
                session.kill()
                break
            if stream == STDERR:
                room = RUNNER_STDERR_LIMIT - len(transcript.runner_stderr)
                transcript.runner_stderr += data[: max(room, 0)]
                continue
            if stream != STDOUT:
                continue
            for frame in reader.feed(data):
                kind = frame["k"]
                if kind == "out" and frame.get("s") in ("stdout", "stderr"):
                    text = frame.get("d")
                    if isinstance(text, str):
                        kept = transcript.add_output(frame["s"], text)
                        if kept:
                            emit(frame["s"], kept)
                elif kind == "log":
                    level = str(frame.get("level", "INFO")).upper()
                    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
                        level = "INFO"
                    log.log(level, "sandbox: {}", str(frame.get("msg", ""))[:2000])
                elif kind == "phase":
                    phase = str(frame.get("phase", ""))[:32]
                    transcript.phase = phase
                    emit("phase", phase)
                    if phase == "ready":
                        if detach_network:
                            session.detach_network()
                            log.debug("install network detached")
                        session.send(b"go\n")
                        session.close_stdin()
                        deadline = time.monotonic() + VERIFY_BUDGET_S + s.stop_grace_s
                    elif phase == "running":
                        deadline = time.monotonic() + limits.timeout_s + s.stop_grace_s
                    elif phase == "collecting":
                        deadline = time.monotonic() + COLLECT_BUDGET_S + s.stop_grace_s
                elif kind.startswith("artifact_") and transcript.artifacts is not None:
                    transcript.artifacts.handle(frame)
                elif kind == "result":
                    transcript.result = frame
        if reader.noise_lines or reader.bad_frames:
            log.warning(
                "ignored {} unauthenticated line(s) and {} malformed frame(s) from the sandbox",
                reader.noise_lines, reader.bad_frames,
            )  # fmt: skip
        result = transcript.result
        if defer_exit and _finished_cleanly(transcript):
            return ExitState(exit_code=None, oom_killed=False)
        if result is not None and isinstance(result.get("oom_kills"), int):
            # The runner read the cgroup's OOM counter itself, and exits right
            # after its result: the end of the stream means the container has
            # stopped, and removing a stopped container is much cheaper than
            # killing a running one.
            end = time.monotonic() + EXIT_WAIT_S
            while (left := end - time.monotonic()) > 0:
                chunk = session.read(left)
                if chunk is not None and not chunk[1]:
                    break
            return ExitState(exit_code=None, oom_killed=False)
        return session.exit_state(timeout_s=10.0)

    # -- result -------------------------------------------------------------------
    def _result(
        self,
        run_id: str,
        image: str,
        request: RunRequest,
        transcript: _Transcript,
        exit_state: ExitState,
    ) -> RunResult:
        frame = transcript.result or {}
        install = _dict(frame.get("install"))
        verify = _dict(frame.get("verify"))
        execute = _dict(frame.get("execute"))
        env = _dict(frame.get("environment"))
        status, error = classify(transcript, exit_state)
        collector = transcript.artifacts
        assert collector is not None
        collector.finish(_dict(frame.get("artifacts")))
        packages = [
            PackageInfo(name=str(p["name"]), version=str(p["version"]))
            for p in verify.get("packages") or []
            if isinstance(p, dict) and "name" in p and "version" in p
        ]
        exit_code = execute.get("exit_code")
        if exit_code is None and isinstance(execute.get("signal"), int):
            exit_code = -execute["signal"]
        return RunResult(
            id=run_id,
            status=status,
            exit_code=exit_code if isinstance(exit_code, int) else None,
            stdout="".join(transcript.stdout),
            stderr="".join(transcript.stderr),
            stdout_truncated=bool(execute.get("stdout_truncated")) or transcript.stdout_cut,
            stderr_truncated=bool(execute.get("stderr_truncated")) or transcript.stderr_cut,
            timings=Timings(
                install_s=round(_float(install.get("duration_s")), 4),
                execute_s=round(_float(execute.get("duration_s")), 4),
            ),
            install=InstallReport(
                requirements=list(request.requirements),
                packages=packages,
                installer=str(install.get("installer", "pip")),
                fallback_triggered=bool(install.get("fallback_triggered")),
                log_tail=str(install.get("log_tail", ""))[-self.settings.install_log_limit_bytes :],
            ),
            environment=EnvironmentInfo(
                platform=str(env.get("platform", "")),
                python_version=str(env.get("python_version", "")),
                path_separator=str(env.get("path_separator", "")),
                pythonpath=str(env.get("pythonpath", "")),
                home=str(env.get("home", "")),
                sandbox_dir=str(env.get("sandbox_dir", "")),
                uid=env.get("uid") if isinstance(env.get("uid"), int) else None,
                sandbox_removed=frame.get("sandbox_removed")
                if isinstance(frame.get("sandbox_removed"), bool)
                else None,
                mismatches=[str(m) for m in frame.get("mismatch") or []][:20],
            ),
            artifacts=collector.artifacts,
            artifacts_skipped=collector.skipped,
            artifacts_truncated=collector.truncated,
            image=image,
            error=error,
        )


def _finished_cleanly(transcript: _Transcript) -> bool:
    """The runner sent its result and read its own OOM count: nothing more to learn."""
    result = transcript.result
    return (
        result is not None
        and transcript.deadline_hit is None
        and isinstance(result.get("oom_kills"), int)
    )


def _remove(session: Session, log: Any) -> None:
    try:
        session.remove()
    except ExecutorError as exc:
        # Never mask the first error; the retries and the sweep will find it by label.
        log.warning("cleanup failed: {}", exc)


def _requirement_entries(requirements: list[str]) -> list[dict[str, object]]:
    """What the runner needs of each requirement: the line, and the name to verify."""
    from packaging.requirements import Requirement

    entries = []
    for line in requirements:
        req = Requirement(line)
        entries.append({"line": line, "name": req.name, "optional": req.marker is not None})
    return entries


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _float(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and value >= 0 else 0.0


def classify(transcript: _Transcript, exit_state: ExitState) -> tuple[RunStatus, str | None]:
    """Decide the status of a run from what the runner said and how the container ended."""
    frame = transcript.result
    execute = _dict(frame.get("execute")) if frame else {}
    install = _dict(frame.get("install")) if frame else {}
    verify = _dict(frame.get("verify")) if frame else {}
    oom_in_runner = bool(
        frame and isinstance(frame.get("oom_kills"), int) and frame["oom_kills"] > 0
    )
    if transcript.deadline_hit == "cancelled":
        return RunStatus.CANCELLED, "cancelled by request"
    if transcript.deadline_hit == "stream":
        return RunStatus.OUTPUT_EXCEEDED, "the sandbox's output stream exceeded its budget"
    if transcript.deadline_hit in ("starting", "installing"):
        return RunStatus.INSTALL_FAILED, "requirements did not install within the install timeout"
    if transcript.deadline_hit is not None:
        return RunStatus.TIMED_OUT, f"killed at the deadline (phase {transcript.deadline_hit})"
    if exit_state.oom_killed or oom_in_runner:  # the main process or any child
        return RunStatus.MEMORY_EXCEEDED, "the memory limit was reached"
    if frame is None:
        tail = transcript.runner_stderr[-2000:].decode("utf-8", "replace").strip()
        return RunStatus.ERROR, (
            f"the sandbox ended without a result (container exit code {exit_state.exit_code})"
            + (f": {tail}" if tail else "")
        )
    if frame.get("error"):
        return RunStatus.ERROR, str(frame["error"])[:2000]
    if not install.get("ok", False):
        reason = "install timed out" if install.get("timed_out") else "pip install failed"
        return RunStatus.INSTALL_FAILED, reason
    if verify and not verify.get("ok", False):
        missing = ", ".join(str(m) for m in verify.get("missing") or [])
        return (
            RunStatus.INSTALL_FAILED,
            f"installed but not found in the run's environment: {missing}",
        )
    if execute.get("timed_out"):
        return RunStatus.TIMED_OUT, "the code ran past its timeout"
    if execute.get("output_exceeded"):
        return RunStatus.OUTPUT_EXCEEDED, "output passed its cap"
    if execute.get("exit_code") == 0:
        return RunStatus.SUCCEEDED, None
    return RunStatus.FAILED, None
