"""The environment cache: each requirement set installed once, then mounted read-only.

    cache = EnvCache(settings, backend, driver, controller_id)
    outcome = cache.get_or_install(["pandas"], image, run_id)   # Ready(env, hit) | InstallFailure

Layout on the engine: one named volume ``ai-data-agent-envs`` holds every
finished environment at ``<key>/`` with a manifest; every sandbox mounts it
read-only at `ENVS_MOUNT` and puts ``ENVS_MOUNT/<key>`` on ``PYTHONPATH`` after
its own sandbox dir. Installs, publishing and pruning happen in the cache's own
sandboxes (`sandboxes`), so no run can modify an environment another run uses.

The index (`index`) says what is ready; on a miss, the install sandbox first
looks in the volume, so an environment another controller published is
adopted, not installed again. A per-key lock makes concurrent requests for one
set, in any process of this user, install it once. An environment in use (a
run, a live session, a compile) is held, and pruning spares it. A caller that
finds its environment gone from the volume after all (`Vanished`) forgets it
and tries once more (`vanished.once_more_if_vanished`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.backend import Backend
from ai_data_agent.executor.driver import SandboxDriver
from ai_data_agent.executor.env.index import (
    EnvIndex,
    ImageInfo,
    cache_key,
    default_index_path,
)
from ai_data_agent.executor.env.sandboxes import (
    CACHE_VOLUME,
    UV_CACHE_VOLUME,
    CacheSandboxes,
    InstallFailure,
    Ready,
)
from ai_data_agent.executor.env.staging import StagingVolumes
from ai_data_agent.executor.jobs import probe_job, prune_job
from ai_data_agent.executor.spec import ENVS_MOUNT, LABEL_PREFIX, VolumeMount
from ai_data_agent.settings import Settings

__all__ = ["EnvCache", "PendingCompile"]

LABEL_CACHE = LABEL_PREFIX + "cache"
HINT_WAIT_S = 60.0  # a new environment's compile waits this long at most for a run's imports
FIRST_COMPILE_MAX_S = 30.0  # a run waits this long at most for its imports' bytecode
# The rest of a new environment's compile starts once no run began or ended this long (at
# most `REST_WAIT_MAX_S` later): beside a run on a small host it slows that run.
REST_QUIET_S = 5.0
REST_WAIT_MAX_S = 120.0


@dataclass
class PendingCompile:
    """A compile of environment ``key`` not finished yet: ``first``, the files to compile
    first (what a run imported); ``timer`` ends the wait for them."""

    key: str
    run_id: str
    first: list[str] = field(default_factory=list)
    claimed: bool = False  # by the run that reports its imports (or the timer)
    quiet_wait: bool = False  # its first files done, the rest waits for a lull in runs
    submitted: bool = False
    timer: threading.Timer | None = None


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
    _compiles: dict[str, PendingCompile] = field(default_factory=dict, init=False)
    _stop_compiles: threading.Event = field(default_factory=threading.Event, init=False)
    _last_run: float = field(default=0.0, init=False)  # monotonic: a run began or ended
    sandboxes: CacheSandboxes = field(init=False)

    def __post_init__(self) -> None:
        self.sandboxes = CacheSandboxes(
            self.settings, self.backend, self.driver, self.controller_id
        )

    @property
    def index_path(self) -> Path:
        """The setting, else the default for this engine (asks the engine its id)."""
        return self.settings.env_cache_index or default_index_path(self.backend.engine_id())

    @property
    def index(self) -> EnvIndex:
        """Raises: ConfigurationError: it cannot be written (`EnvIndex`)."""
        with self._guard:
            if self._index is None:
                self._index = EnvIndex(self.index_path)
            return self._index

    @property
    def staging(self) -> StagingVolumes:
        return self.sandboxes.staging

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

    # -- lookup and install ---------------------------------------------------------
    def image_info(self, image: str, run_id: str) -> tuple[str, ImageInfo]:
        """The image's id and python, probed once per image id (kept in the index)."""
        image_id = self.backend.image_id(image)
        info = self.index.image_info(image_id)
        if info is None:
            frame = self.sandboxes.result(probe_job(), run_id, ())
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
        self, requirements: list[str], image: str, run_id: str, *, imports_follow: bool = False
    ) -> Ready | InstallFailure:
        """The environment for ``requirements``, installed (or adopted) if needed. Its
        bytecode is compiled in the background when it is not yet (a new environment, a
        compile that was cut short); with ``imports_follow`` the caller reports what its
        code imported (`imported`), and a new environment compiles those files first.

        Raises:
            ExecutorError: Docker failed.
        """
        self.prepare()
        self._last_run = time.monotonic()
        key = self.key_for(requirements, image, run_id)
        with self.index.install_lock(key):
            env = self.index.get(key)
            if env is not None:
                logger.bind(run_id=run_id).info("environment cache hit: {}", key[:12])
                if not env.compiled:
                    self._compile_later(key, run_id, hinted=False)
                return Ready(env, hit=True)
            outcome = self.sandboxes.install(key, requirements, run_id)
            if isinstance(outcome, InstallFailure):
                return outcome
            self.index.put(outcome.env)
            if not outcome.env.compiled:
                self._compile_later(key, run_id, hinted=imports_follow and outcome.published)
        with self.using(key):  # the new environment is not evicted by its own install
            try:
                self.prune_to_bounds()
            except ExecutorError as exc:
                logger.bind(run_id=run_id).warning("cache eviction failed: {}", exc)
        return outcome

    def _compile_later(self, key: str, run_id: str, *, hinted: bool) -> None:
        """Compile environment ``key``'s bytecode in the background (pruning spares it
        meanwhile); with ``hinted``, once the run that follows reports its imports
        (`imported`), or after `HINT_WAIT_S`. Once per key at a time in this process."""
        with self._guard:
            if key in self._compiles:
                return  # waiting, queued or running
            pending = self._compiles[key] = PendingCompile(key, run_id)
            self._in_use[key] = self._in_use.get(key, 0) + 1
            if hinted:
                pending.timer = threading.Timer(HINT_WAIT_S, self.imported, (key, []))
                pending.timer.daemon = True
                pending.timer.start()
                return
        self._submit(pending)

    def imported(self, key: str, files: list[str]) -> None:
        """What a run of ``key`` imported (files relative to it), when the environment's
        compile waits for them: compiled now, at a run's weight and before the caller
        goes on (at most `FIRST_COMPILE_MAX_S`), so the next run finds their bytecode
        even when it starts at once; the rest in the background after a lull in runs."""
        self._last_run = time.monotonic()
        with self._guard:
            pending = self._compiles.get(key)
            if pending is None or pending.claimed or pending.submitted:
                return
            pending.claimed = True
            if pending.timer is not None:
                pending.timer.cancel()
        if files:
            cut = threading.Event()
            timer = threading.Timer(FIRST_COMPILE_MAX_S, cut.set)
            timer.start()
            try:
                done = self.sandboxes.compile(key, pending.run_id, cut, files, rest=False)
            finally:
                timer.cancel()
            pending.first = [] if done else list(files)
        self._last_run = time.monotonic()  # the reporting run ends now
        with self._guard:
            pending.quiet_wait = True
        self._when_quiet(pending, self._last_run)

    def _when_quiet(self, pending: PendingCompile, since: float) -> None:
        """Submit ``pending`` once no run began or ended for `REST_QUIET_S`, or
        `REST_WAIT_MAX_S` after ``since``; until then a timer looks again."""
        now = time.monotonic()
        calm_s = now - self._last_run
        if calm_s >= REST_QUIET_S or now - since >= REST_WAIT_MAX_S:
            self._submit(pending)
            return
        with self._guard:
            if pending.submitted or self._compiles.get(pending.key) is not pending:
                return  # submitted or dropped by `close` meanwhile
            left_s = min(REST_QUIET_S - calm_s, REST_WAIT_MAX_S - (now - since))
            pending.timer = threading.Timer(left_s, self._when_quiet, (pending, since))
            pending.timer.daemon = True
            pending.timer.start()

    def _submit(self, pending: PendingCompile) -> None:
        with self._guard:
            if pending.submitted or self._compiles.get(pending.key) is not pending:
                return
            pending.submitted = True
            if pending.timer is not None:
                pending.timer.cancel()
            if self._background is None:
                self._background = ThreadPoolExecutor(1, thread_name_prefix="compile")
            background, stop = self._background, self._stop_compiles
        background.submit(self._compile, pending, stop)

    def _compile(self, pending: PendingCompile, stop: threading.Event) -> None:
        key = pending.key
        try:
            with self.index.compile_lock(key) as mine:
                if not mine:  # another process compiles it; it records the outcome
                    return
                if self.sandboxes.compile(key, pending.run_id, stop, pending.first):
                    self.index.mark_compiled(key)
        finally:
            with self._guard:
                self._compiles.pop(key, None)
            self.release(key)

    def close(self, *, stop_compiles: bool = False) -> None:
        """Wait for background compiles (those waiting for a run's imports start now), or
        with ``stop_compiles`` stop them (for a process that is about to be killed: the
        environment stays, without the rest of its bytecode, and its next hit compiles
        it); remove the staging volume made ahead. Idempotent; the cache stays usable."""
        with self._guard:
            # Those claimed and not waiting for a lull are the reporting run's to submit.
            waiting = [
                p
                for p in self._compiles.values()
                if not p.submitted and (p.quiet_wait or not p.claimed)
            ]
        for pending in waiting:
            if not stop_compiles:
                self._submit(pending)
            elif pending.timer is not None:
                pending.timer.cancel()
                with self._guard:
                    self._compiles.pop(pending.key, None)
                self.release(pending.key)
        with self._guard:
            background, self._background = self._background, None
            stop, self._stop_compiles = self._stop_compiles, threading.Event()
        if background is not None:
            if stop_compiles:
                stop.set()  # queued compiles return at once, a running one is killed
            background.shutdown(wait=True)
        self.staging.close()

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
        job = prune_job(ENVS_MOUNT, sorted(doomed))
        self.sandboxes.result(job, f"prune-{uuid.uuid4().hex[:8]}", mounts)
        self.index.delete(sorted(doomed))
        return sorted(doomed)

    def prune_to_bounds(self) -> list[str]:
        return self.prune(
            max_bytes=self.settings.env_cache_max_bytes, max_age_s=self.settings.env_cache_max_age_s
        )
