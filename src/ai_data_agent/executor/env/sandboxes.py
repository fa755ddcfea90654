"""The environment cache's own sandboxes: installs, and jobs that run only our code.

    sandboxes = CacheSandboxes(settings, backend, driver, controller_id)
    outcome = sandboxes.install(key, ["pandas"], run_id)     # Ready | InstallFailure
    frame = sandboxes.result(probe_job(), run_id, ())         # probe, publish, compile, prune

An install runs in a sandbox like a run's (same limits; third-party code runs
there) into a fresh staging volume, never into the shared one, after first
looking there: an environment another controller published is adopted. A
second sandbox, which runs only our code, then copies the result into the
shared volume under a hidden name and renames it into place, so a
half-finished install is never visible. Probing the image's python, compiling
an environment's bytecode (in the background, yielding to runs) and pruning
run the same way, without a network. Every one goes through the driver.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, replace

from loguru import logger

from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.backend import Backend
from ai_data_agent.executor.conversation import Transcript
from ai_data_agent.executor.diagnose import install_error
from ai_data_agent.executor.driver import Assignment, SandboxDriver
from ai_data_agent.executor.env.index import CachedEnv
from ai_data_agent.executor.env.staging import StagingVolumes
from ai_data_agent.executor.frames import InstallSection, ResultFrame
from ai_data_agent.executor.jobs import Job, compile_job, install_job, publish_job
from ai_data_agent.executor.outcome import classify
from ai_data_agent.executor.owner import owner_label
from ai_data_agent.executor.spec import (
    ENVS_MOUNT,
    LABEL_CONTROLLER,
    LABEL_DEADLINE,
    LABEL_MANAGED,
    LABEL_OWNER,
    STAGE_MOUNT,
    UV_CACHE_MOUNT,
    VolumeMount,
    build_spec,
)
from ai_data_agent.limits import default_limits
from ai_data_agent.settings import Settings

__all__ = [
    "CACHE_VOLUME",
    "STAGE_MOUNT",
    "UV_CACHE_VOLUME",
    "CacheSandboxes",
    "InstallFailure",
    "Ready",
]

CACHE_VOLUME = "ai-data-agent-envs"
UV_CACHE_VOLUME = "ai-data-agent-uv-cache"
BACKGROUND_CPU_SHARES = 128  # an eighth of a run's weight when they compete


@dataclass(frozen=True)
class Ready:
    """The environment of a requirement set; ``published``: by this install, just now."""

    env: CachedEnv
    hit: bool
    published: bool = False


@dataclass(frozen=True)
class InstallFailure:
    """The set did not install: the installer's report (when it got that far) and why."""

    install: InstallSection | None
    error: str


class CacheSandboxes:
    """Runs the cache's jobs, each in its own locked-down sandbox (network only to install)."""

    def __init__(
        self, settings: Settings, backend: Backend, driver: SandboxDriver, controller_id: str
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.driver = driver
        self.controller_id = controller_id
        self.staging = StagingVolumes(backend, self._staging_labels)

    def install_cpus(self) -> float:
        return min(self.settings.install_cpus, float(os.cpu_count() or 1))

    def run(
        self,
        job: Job,
        run_id: str,
        mounts: tuple[VolumeMount, ...],
        *,
        network: bool = False,
        cancel: threading.Event | None = None,
    ) -> Transcript:
        """``job`` in its own sandbox, with ``mounts`` (and the install network, for installs)."""
        limits = default_limits(self.settings)
        if job.mode in ("install", "compile"):  # uv and compileall use several CPUs well
            limits = limits.model_copy(update={"cpus": self.install_cpus()})
        spec = build_spec(
            self.settings,
            limits,
            image=self.backend.resolve_image(),
            run_id=run_id,
            controller_id=self.controller_id,
            needs_install=network,
            mounts=mounts,
        )
        if job.mode == "compile" and job.compile and job.compile.get("rest") is not False:
            # In the background: runs come first. A run's own imports go at its weight.
            spec = replace(spec, cpu_shares=BACKGROUND_CPU_SHARES)
        assignment = Assignment(spec, job, ship_uv=network and self.settings.installer == "uv")
        return self.driver.drive(assignment, run_id=run_id, cancel=cancel)

    def result(
        self,
        job: Job,
        run_id: str,
        mounts: tuple[VolumeMount, ...],
        cancel: threading.Event | None = None,
    ) -> ResultFrame:
        """A job without network that runs only our code; its result frame.

        Raises:
            ExecutorError: the sandbox gave no usable result (or ``cancel`` was set).
        """
        transcript = self.run(job, run_id, mounts, cancel=cancel)
        frame = transcript.result
        if frame is None or frame.error or transcript.deadline_hit is not None:
            _, error = classify(transcript, install_timeout_s=self.settings.install_timeout_s)
            reason = frame.error if frame is not None and frame.error else error
            raise ExecutorError(f"{job.mode} job failed: {reason}", run_id=run_id, step=job.mode)
        return frame

    def _staging_labels(self) -> dict[str, str]:
        lifetime = self.settings.install_timeout_s + 600
        return {
            LABEL_MANAGED: "true",
            LABEL_CONTROLLER: self.controller_id,
            LABEL_OWNER: owner_label(),
            LABEL_DEADLINE: str(int(time.time() + lifetime)),
        }

    def install(self, key: str, requirements: list[str], run_id: str) -> Ready | InstallFailure:
        """Install (or adopt) ``requirements`` as environment ``key`` and publish it.

        Raises:
            ExecutorError: Docker failed, or publishing did.
        """
        stage = self.staging.take()
        started = time.monotonic()
        try:
            uv_cache = UV_CACHE_MOUNT if self.settings.uv_shared_cache else None
            job = install_job(
                self.settings, requirements, target=f"{STAGE_MOUNT}/env", uv_cache=uv_cache
            )
            job.lookup = {"envs": ENVS_MOUNT, "key": key}
            mounts = (
                VolumeMount(stage, STAGE_MOUNT, read_only=False),
                VolumeMount(UV_CACHE_VOLUME, UV_CACHE_MOUNT, read_only=False),
                VolumeMount(CACHE_VOLUME, ENVS_MOUNT, read_only=True),
            )
            outcome = self._installed(key, requirements, job, mounts, run_id)
            if isinstance(outcome, InstallFailure) or outcome.hit:
                return outcome
            env = replace(outcome.env, install_s=time.monotonic() - started)
            published = self.result(
                publish_job(f"{STAGE_MOUNT}/env", ENVS_MOUNT, key, env.manifest()),
                run_id,
                (
                    VolumeMount(stage, STAGE_MOUNT, read_only=True),
                    VolumeMount(CACHE_VOLUME, ENVS_MOUNT, read_only=False),
                ),
            )
            logger.bind(run_id=run_id).info(
                "environment {} installed in {:.2f}s", key[:12], env.install_s
            )
            env = replace(env, size_bytes=published.size)
            return Ready(env, hit=False, published=bool(published.published))
        finally:
            self.staging.discard(stage)

    def compile(
        self,
        key: str,
        run_id: str,
        stop: threading.Event,
        first: list[str] | None = None,
        *,
        rest: bool = True,
    ) -> bool:
        """Compile environment ``key``'s bytecode, the files ``first`` (relative to it) before
        the rest (``stop`` kills it); True when the compile went through all of it (files
        that do not compile stay so), or without ``rest``, through ``first``. Failures are
        logged."""
        log = logger.bind(run_id=run_id)
        started = time.monotonic()
        try:
            if stop.is_set():
                return False
            mounts = (VolumeMount(CACHE_VOLUME, ENVS_MOUNT, read_only=False),)
            job = compile_job(ENVS_MOUNT, key, max(int(self.install_cpus()), 1), first, rest=rest)
            frame = self.result(job, f"{run_id}-compile", mounts, cancel=stop)
            log.info(
                "environment {} compiled in {:.2f}s ({} file(s) first{}; ok: {})",
                key[:12],
                time.monotonic() - started,
                len(first or []),
                "" if rest else ", the rest later",
                frame.compiled,
            )
            return bool(frame.complete) or not rest
        except ExecutorError as exc:
            if stop.is_set():
                log.info("bytecode of {} left uncompiled: the cache is closing", key[:12])
            else:
                log.warning("bytecode of {} not compiled: {}", key[:12], exc)
            return False

    def _installed(
        self,
        key: str,
        requirements: list[str],
        job: Job,
        mounts: tuple[VolumeMount, ...],
        run_id: str,
    ) -> Ready | InstallFailure:
        """Run the install sandbox: an adopted environment, a new one (not yet published), or why not."""
        transcript = self.run(job, run_id, mounts, network=True)
        frame = transcript.result
        if frame is not None and frame.manifest is not None:
            try:
                env = CachedEnv.from_manifest(key, frame.manifest)
            except ValueError as exc:
                logger.bind(run_id=run_id).warning("ignoring environment {}: {}", key[:12], exc)
            else:
                logger.bind(run_id=run_id).info("environment {} adopted from the volume", key[:12])
                return Ready(env, hit=True)
        if frame is None or transcript.deadline_hit is not None or frame.error:
            _, error = classify(transcript, install_timeout_s=self.settings.install_timeout_s)
            return InstallFailure(frame.install if frame else None, error or "install failed")
        install = frame.install or InstallSection()
        if not install.ok:
            return InstallFailure(
                install, install_error(install, timeout_s=self.settings.install_timeout_s)
            )
        verify = frame.verify
        if verify is None or not verify.ok:
            missing = ", ".join(verify.missing) if verify is not None else "?"
            return InstallFailure(install, f"installed but not found: {missing}")
        now = time.time()
        return Ready(
            CachedEnv(
                key=key,
                requirements=list(requirements),
                packages=list(verify.packages),
                installer=install.installer or self.settings.installer,
                fallback_triggered=install.fallback_triggered,
                size_bytes=frame.size,
                created_at=now,
                last_used_at=now,
                log_tail=install.log_tail,
            ),
            hit=False,
        )
