"""The environment cache: each requirement set installed once, then mounted read-only.

    cache = EnvCache(settings, backend, driver, controller_id)
    outcome = cache.get_or_install(["pandas"], image, run_id)   # Ready(env, hit) | InstallFailure

Layout on the engine: one named volume ``ai-data-agent-envs`` holds every
finished environment at ``<key>/`` with a manifest; every sandbox mounts it
read-only at `ENVS_MOUNT` and puts ``ENVS_MOUNT/<key>`` on ``PYTHONPATH`` after
its own sandbox dir. An install happens in its own sandbox (same limits;
third-party code runs there) into a fresh staging volume, never into the
shared one; a second container that runs only our code then copies the result
into place under a hidden name and renames it, so a half-finished install is
never visible and no run can modify an environment another run uses.

The index (`envindex`) says what is ready; on a miss, the install sandbox
first looks in the volume, so an environment another controller published is
adopted, not installed again. A per-key lock makes concurrent requests for one
set, in any process of this user, install it once.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from loguru import logger

from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.backend import Backend
from ai_data_agent.executor.conversation import Transcript
from ai_data_agent.executor.diagnose import install_error
from ai_data_agent.executor.driver import Assignment, SandboxDriver
from ai_data_agent.executor.envindex import (
    CachedEnv,
    EnvIndex,
    ImageInfo,
    cache_key,
    default_index_path,
)
from ai_data_agent.executor.frames import InstallSection, ResultFrame
from ai_data_agent.executor.jobs import (
    Job,
    compile_job,
    install_job,
    probe_job,
    prune_job,
    publish_job,
)
from ai_data_agent.executor.outcome import classify
from ai_data_agent.executor.owner import owner_label
from ai_data_agent.executor.spec import (
    ENVS_MOUNT,
    LABEL_CONTROLLER,
    LABEL_DEADLINE,
    LABEL_MANAGED,
    LABEL_OWNER,
    LABEL_PREFIX,
    VolumeMount,
    build_spec,
)
from ai_data_agent.executor.staging import StagingVolumes
from ai_data_agent.limits import default_limits
from ai_data_agent.settings import Settings

__all__ = ["CachedEnv", "EnvCache", "InstallFailure", "Ready", "cache_key", "default_index_path"]

CACHE_VOLUME = "ai-data-agent-envs"
UV_CACHE_VOLUME = "ai-data-agent-uv-cache"
LABEL_CACHE = LABEL_PREFIX + "cache"
STAGE_MOUNT = "/opt/ai-data-agent/stage"
BACKGROUND_CPU_SHARES = 128  # an eighth of a run's weight when they compete
UV_CACHE_MOUNT = "/opt/ai-data-agent/uv-cache"


@dataclass(frozen=True)
class Ready:
    env: CachedEnv
    hit: bool


@dataclass(frozen=True)
class InstallFailure:
    """The set did not install: the installer's report (when it got that far) and why."""

    install: InstallSection | None
    error: str


@dataclass
class EnvCache:
    """Installs requirement sets once and hands out read-only environments."""

    settings: Settings
    backend: Backend
    driver: SandboxDriver
    controller_id: str
    _index: EnvIndex | None = field(default=None, init=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, init=False)
    _volumes_ready: bool = field(default=False, init=False)
    _in_use: dict[str, int] = field(default_factory=dict, init=False)
    _background: ThreadPoolExecutor | None = field(default=None, init=False)
    _stop_compiles: threading.Event = field(default_factory=threading.Event, init=False)
    staging: StagingVolumes = field(init=False)

    def __post_init__(self) -> None:
        self.staging = StagingVolumes(self.backend, self._staging_labels)

    @property
    def index(self) -> EnvIndex:
        with self._guard:
            if self._index is None:
                path = self.settings.env_cache_index or default_index_path(self.backend.engine_id())
                self._index = EnvIndex(path)
            return self._index

    # -- mounts -------------------------------------------------------------------
    def run_mounts(self) -> tuple[VolumeMount, ...]:
        """What every sandbox mounts: the shared cache, read-only."""
        return (VolumeMount(CACHE_VOLUME, ENVS_MOUNT, read_only=True),)

    def prepare(self) -> None:
        """Create the shared volumes (once per process; cheap when they exist), and start
        making a staging volume, so that the first install finds one ready."""
        if self._volumes_ready:
            return
        for name in (CACHE_VOLUME, UV_CACHE_VOLUME):
            self.backend.ensure_volume(name, {LABEL_CACHE: "true"})
        self._volumes_ready = True
        self.staging.prefetch()

    def _sandbox(
        self,
        job: Job,
        run_id: str,
        mounts: tuple[VolumeMount, ...],
        *,
        network: bool = False,
        cancel: threading.Event | None = None,
    ) -> Transcript:
        """An internal job in its own locked-down sandbox (network only to install)."""
        limits = default_limits(self.settings)
        if job.mode in ("install", "compile"):  # uv and compileall use several CPUs well
            limits = limits.model_copy(update={"cpus": self._install_cpus()})
        spec = build_spec(
            self.settings,
            limits,
            image=self.backend.resolve_image(),
            run_id=run_id,
            controller_id=self.controller_id,
            needs_install=network,
            mounts=mounts,
        )
        if job.mode == "compile":  # in the background: runs come first
            spec = replace(spec, cpu_shares=BACKGROUND_CPU_SHARES)
        assignment = Assignment(spec, job, ship_uv=network and self.settings.installer == "uv")
        return self.driver.drive(assignment, run_id=run_id, cancel=cancel)

    def _drive(
        self,
        job: Job,
        run_id: str,
        mounts: tuple[VolumeMount, ...],
        cancel: threading.Event | None = None,
    ) -> ResultFrame:
        """An internal job without network; its result frame.

        Raises:
            ExecutorError: the sandbox gave no usable result (or ``cancel`` was set).
        """
        transcript = self._sandbox(job, run_id, mounts, cancel=cancel)
        frame = transcript.result
        if frame is None or frame.error or transcript.deadline_hit is not None:
            _, error = classify(transcript, install_timeout_s=self.settings.install_timeout_s)
            reason = frame.error if frame is not None and frame.error else error
            raise ExecutorError(f"{job.mode} job failed: {reason}", run_id=run_id, step=job.mode)
        return frame

    # -- lookup and install ---------------------------------------------------------
    def image_info(self, image: str, run_id: str) -> tuple[str, ImageInfo]:
        """The image's id and python, probed once per image id (kept in the index)."""
        image_id = self.backend.image_id(image)
        info = self.index.image_info(image_id)
        if info is None:
            frame = self._drive(probe_job(), run_id, ())
            if not frame.python or not frame.platform:
                raise ExecutorError(
                    f"cannot probe the python of {image}", run_id=run_id, step="probe"
                )
            info = ImageInfo(f"{frame.python}-{frame.tag}", frame.platform)
            self.index.set_image_info(image_id, info)
        return image_id, info

    def key_for(self, requirements: list[str], image: str, run_id: str) -> str:
        image_id, info = self.image_info(image, run_id)
        s = self.settings
        flavour = json.dumps([s.installer, s.pip_index_url, s.allow_sdists])
        return cache_key(requirements, image_id, info, flavour)

    def hold(self, key: str) -> None:
        """Mark ``key`` in use (a run, a live session), so pruning leaves it alone."""
        with self._guard:
            self._in_use[key] = self._in_use.get(key, 0) + 1

    def release(self, key: str) -> None:
        with self._guard:
            self._in_use[key] -= 1
            if not self._in_use[key]:
                del self._in_use[key]

    @contextmanager
    def using(self, key: str) -> Iterator[None]:
        """`hold` ``key`` for the duration of a run."""
        self.hold(key)
        try:
            yield
        finally:
            self.release(key)

    def get_or_install(
        self, requirements: list[str], image: str, run_id: str
    ) -> Ready | InstallFailure:
        """The environment for ``requirements``, installed (or adopted) if needed.

        Raises:
            ExecutorError: Docker failed.
        """
        self.prepare()
        key = self.key_for(requirements, image, run_id)
        with self.index.install_lock(key):
            env = self.index.get(key)
            if env is not None:
                logger.bind(run_id=run_id).info("environment cache hit: {}", key[:12])
                return Ready(env, hit=True)
            outcome = self._install(key, requirements, run_id)
            if isinstance(outcome, InstallFailure):
                return outcome
            self.index.put(outcome.env)
        with self.using(key):  # the new environment is not evicted by its own install
            try:
                self.prune_to_bounds()
            except ExecutorError as exc:
                logger.bind(run_id=run_id).warning("cache eviction failed: {}", exc)
        return outcome

    def _staging_labels(self) -> dict[str, str]:
        lifetime = self.settings.install_timeout_s + 600
        return {
            LABEL_MANAGED: "true",
            LABEL_CONTROLLER: self.controller_id,
            LABEL_OWNER: owner_label(),
            LABEL_DEADLINE: str(int(time.time() + lifetime)),
        }

    def _install(self, key: str, requirements: list[str], run_id: str) -> Ready | InstallFailure:
        log = logger.bind(run_id=run_id)
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
            published = self._drive(
                publish_job(f"{STAGE_MOUNT}/env", ENVS_MOUNT, key, env.manifest()),
                run_id,
                (
                    VolumeMount(stage, STAGE_MOUNT, read_only=True),
                    VolumeMount(CACHE_VOLUME, ENVS_MOUNT, read_only=False),
                ),
            )
            log.info("environment {} installed in {:.2f}s", key[:12], env.install_s)
            if published.published:
                self._compile_later(key, run_id)
            return Ready(replace(env, size_bytes=published.size), hit=False)
        finally:
            self.staging.discard(stage)

    def _compile_later(self, key: str, run_id: str) -> None:
        """Compile the new environment's bytecode in the background (pruning spares it)."""
        self.hold(key)
        workers = max(int(self._install_cpus()), 1)
        log = logger.bind(run_id=run_id)

        def compile_env(stop: threading.Event) -> None:
            started = time.monotonic()
            try:
                if stop.is_set():
                    return
                mounts = (VolumeMount(CACHE_VOLUME, ENVS_MOUNT, read_only=False),)
                job = compile_job(ENVS_MOUNT, key, workers)
                frame = self._drive(job, f"{run_id}-compile", mounts, cancel=stop)
                elapsed = time.monotonic() - started
                log.info(
                    "environment {} compiled in {:.2f}s (ok: {})", key[:12], elapsed, frame.compiled
                )
            except ExecutorError as exc:
                if stop.is_set():
                    log.info("bytecode of {} left uncompiled: the cache is closing", key[:12])
                else:
                    log.warning("bytecode of {} not compiled: {}", key[:12], exc)
            finally:
                self.release(key)

        with self._guard:
            if self._background is None:
                self._background = ThreadPoolExecutor(1, thread_name_prefix="compile")
            self._background.submit(compile_env, self._stop_compiles)

    def _install_cpus(self) -> float:
        return min(self.settings.install_cpus, float(os.cpu_count() or 1))

    def close(self, *, stop_compiles: bool = False) -> None:
        """Wait for background compiles, or with ``stop_compiles`` stop them (for a process
        that is about to be killed: the environment stays, without the rest of its
        bytecode); remove the staging volume made ahead. Idempotent; the cache stays usable."""
        with self._guard:
            background, self._background = self._background, None
            stop, self._stop_compiles = self._stop_compiles, threading.Event()
        if background is not None:
            if stop_compiles:
                stop.set()  # queued compiles return at once, a running one is killed
            background.shutdown(wait=True)
        self.staging.close()

    def _installed(
        self,
        key: str,
        requirements: list[str],
        job: Job,
        mounts: tuple[VolumeMount, ...],
        run_id: str,
    ) -> Ready | InstallFailure:
        """Run the install sandbox: an adopted environment, a new one (not yet published), or why not."""
        transcript = self._sandbox(job, run_id, mounts, network=True)
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

    def forget(self, key: str) -> None:
        """Drop ``key`` from the index (its files are gone); the next request reinstalls it.

        The volume may have been removed under us too: check it again before use.
        """
        self.index.delete([key])
        self._volumes_ready = False

    # -- management -----------------------------------------------------------------
    def prune(
        self,
        *,
        max_bytes: int | None = None,
        max_age_s: float | None = None,
        keys: list[str] | None = None,
    ) -> list[str]:
        """Evict least recently used environments beyond the bounds (and any ``keys``)."""
        doomed = set(keys or [])
        now = time.time()
        total = 0
        for env in self.index.all():  # most recently used first
            total += env.size_bytes
            too_old = max_age_s is not None and now - env.last_used_at > max_age_s
            too_big = max_bytes is not None and total > max_bytes
            if too_old or too_big:
                doomed.add(env.key)
        with self._guard:
            doomed -= set(self._in_use)
        if not doomed:
            return []
        self.prepare()
        mounts = (VolumeMount(CACHE_VOLUME, ENVS_MOUNT, read_only=False),)
        self._drive(prune_job(ENVS_MOUNT, sorted(doomed)), f"prune-{uuid.uuid4().hex[:8]}", mounts)
        self.index.delete(sorted(doomed))
        return sorted(doomed)

    def prune_to_bounds(self) -> list[str]:
        return self.prune(
            max_bytes=self.settings.env_cache_max_bytes, max_age_s=self.settings.env_cache_max_age_s
        )
