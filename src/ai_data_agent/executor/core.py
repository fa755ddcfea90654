"""The executor: one request in, one fresh container, one `RunResult` out.

    with Executor(Settings()) as executor:
        result = executor.run(RunRequest(code="print('hi')"))

`Executor.run` reads as its steps: resolve the request against the settings,
prepare its environment (the environment cache, or a per-run pip
install inside the run's own sandbox), build the container spec, drive the
sandbox (`driver`), and turn the transcript into a result (`outcome`). The
container is removed in every path (success, failure, timeout, Ctrl-C).
Sessions (`Executor.session`, `Executor.new_session`) open their sandboxes
through the same driver; the executor is their `session.SandboxProvider`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from loguru import logger

from ai_data_agent.egress.proxy import EgressProxy
from ai_data_agent.executor.backend import Backend
from ai_data_agent.executor.conversation import Transcript
from ai_data_agent.executor.data import EngineDatasets
from ai_data_agent.executor.data.profiles import WarmDataProfiles
from ai_data_agent.executor.driver import Assignment, SandboxDriver
from ai_data_agent.executor.env import (
    CachedEnv,
    EnvCache,
    Environments,
    InstallFailure,
    Ready,
    Vanished,
    once_more_if_vanished,
)
from ai_data_agent.executor.env.index import normal_requirement
from ai_data_agent.executor.events import EventHandler, RunEvent
from ai_data_agent.executor.jobs import run_job
from ai_data_agent.executor.link import SandboxLink
from ai_data_agent.executor.outcome import install_failed_result, run_result
from ai_data_agent.executor.pool import WarmPool
from ai_data_agent.executor.session import SandboxOrder, Session
from ai_data_agent.executor.spec import ContainerSpec, VolumeMount, build_spec
from ai_data_agent.executor.warm import Warmth
from ai_data_agent.limits import default_limits, resolve_run
from ai_data_agent.models import Limits, RunRequest, RunResult
from ai_data_agent.session_models import SessionRequest
from ai_data_agent.settings import Settings

__all__ = ["Executor"]


class Executor:
    """Runs requests in fresh sandbox containers. Thread-safe; one per process is enough.

    It keeps the environment cache (see `env`, unless the install mode is
    ``per_run``) and, when ``settings.pool_size`` > 0, a warm pool (see
    `pool`). Call `close` (or use it as a context manager) to drain the pool.
    When the operator allows egress (``settings.egress_allow``), it keeps the
    egress proxy that runs and sessions with an allow-list reach hosts through.
    """

    def __init__(
        self,
        settings: Settings,
        backend: Backend | None = None,
        egress: EgressProxy | None = None,
    ) -> None:
        self.settings = settings
        # The egress proxy (its thread starts at the first lease), when the operator
        # allows egress; a caller may pass its own (another resolver, a namespace).
        self.egress = egress or (EgressProxy(settings) if settings.egress_allow else None)
        self.controller_id = uuid.uuid4().hex[:12]
        if backend is None:
            from ai_data_agent.executor.docker import DockerBackend

            backend = DockerBackend(settings)
        self.backend = backend
        self.pool = (
            WarmPool(
                backend,
                size=settings.pool_size,
                ttl_s=settings.pool_ttl_s,
                memory_mb=settings.pool_memory_mb,
                recent_sets=settings.pool_recent_sets,
            )
            if settings.pool_size > 0
            else None
        )
        self._prewarm = {_normal(s) for s in settings.prewarm}
        self._pool_spec: Callable[[str], ContainerSpec] | None = None
        self.driver = SandboxDriver(settings, backend, self.pool, self.egress)
        self.env_cache = (
            EnvCache(settings, backend, self.driver, self.controller_id)
            if settings.install_mode == "cache"
            else None
        )
        self.datasets = EngineDatasets(settings, backend)
        self._data_profiles = WarmDataProfiles(self.pool, settings.pool_data_profiles)
        self._pool_started = False
        self._pool_lock = threading.Lock()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, *, stop_compiles: bool = False) -> None:
        """Drain the warm pool, finish deferred removals (nothing left behind), close the
        engine connection and stop the egress proxy; background compiles are waited for,
        or stopped with ``stop_compiles`` (see `EnvCache.close`).

        Idempotent; the executor stays usable (it reconnects, without a pool).
        """
        if self.pool is not None:
            self.pool.close()
        if self.env_cache is not None:
            self.env_cache.close(stop_compiles=stop_compiles)
        self.driver.close()
        self.backend.close()
        if self.egress is not None:
            self.egress.close()

    def start_pool(self) -> None:
        """Fill the warm pool now rather than at the first run (a daemon does this at start)."""
        if self.pool is None:
            return
        with self._pool_lock:
            if self._pool_started:
                return
            self._pool_started = True
        image = self.backend.resolve_image()
        defaults = default_limits(self.settings)
        lifetime = self._pool_lifetime()

        def pool_spec(pool_id: str) -> ContainerSpec:
            return self.sandbox_spec(defaults, image, pool_id, install=False, lifetime=lifetime)

        self._pool_spec = pool_spec
        self.pool.add_profile(pool_spec)

    def _keep_warm(self, requirements: list[str], env: CachedEnv) -> None:
        """A prewarm set's environment gets its pre-imported pool profile (`warm`)."""
        if (
            self.pool is None
            or self._pool_spec is None
            or _normal(requirements) not in self._prewarm
        ):
            return
        modules = self.settings.pool_preimport
        warmth = Warmth((env.path,), tuple(modules) if modules is not None else None)
        self.pool.add_profile(self._pool_spec, warmth, floor=1)

    def _pool_lifetime(self) -> float:
        """A pooled sandbox may be taken by a run or by a session: its label covers either."""
        use = max(self.settings.max_timeout_s, self.settings.session_max_lifetime_s)
        return self.settings.pool_ttl_s + use

    # -- public -------------------------------------------------------------------
    def session(self, request: SessionRequest | None = None, **fields: Any) -> Session:
        """Start a session (a kernel in a fresh sandbox); use it as a context manager.

        ``executor.session(requirements=["pandas"])`` is
        ``executor.session(SessionRequest(requirements=["pandas"]))``.

        Raises:
            RequestRejected: the request breaks a server limit (nothing started).
            InstallFailed: its requirements did not install.
            ExecutorError: Docker or the host failed; nothing is left behind.
        """
        self.start_pool()
        return self.new_session(request or SessionRequest(**fields)).start()

    def new_session(self, request: SessionRequest, session_id: str | None = None) -> Session:
        """A session of this executor, not started yet (its limits are resolved: a daemon
        admits it by them first); `Session.start` installs and starts it.

        Raises:
            RequestRejected: the request breaks a server limit.
        """
        return Session(self, request, session_id)

    def run(
        self,
        request: RunRequest,
        *,
        run_id: str | None = None,
        on_event: EventHandler | None = None,
        cancel: threading.Event | None = None,
        artifacts_dir: Path | None = None,
        limits: Limits | None = None,
    ) -> RunResult:
        """Run ``request`` in a fresh container and return its result.

        ``limits`` are the request's, resolved against these settings already
        (the daemon resolves at admission); by default they are resolved here.
        ``on_event`` sees phases and output as they happen (on this thread);
        setting ``cancel`` kills the container and gives status ``cancelled``.
        Files the code leaves under ``outputs/`` are listed in the result and,
        when ``artifacts_dir`` is given, written there (checked, never followed).

        Raises:
            RequestRejected: the request breaks a server limit (nothing started).
            ConfigurationError: the sandbox image cannot be had.
            ExecutorError: Docker or the host failed; the container is gone anyway.
        """
        limits = limits or resolve_run(request, self.settings)
        run_id = run_id or uuid.uuid4().hex
        started = time.monotonic()
        image = self.backend.resolve_image()
        self.start_pool()

        def attempt() -> RunResult | Vanished:
            environment = self._environment(request, image, run_id, on_event)
            if isinstance(environment, InstallFailure):
                return install_failed_result(
                    run_id, image, request, environment.install, environment.error, self.settings
                )
            transcript = self._drive(
                request, limits, image, run_id, environment, on_event, cancel, artifacts_dir, data
            )
            if environment is not None and transcript.result and transcript.result.env_missing:
                # Its container, removed after the answer, still mounts the volume that
                # the install may have to make again: it goes first.
                self.driver.close()
                return Vanished(environment.env.key)
            return self._result(run_id, image, request, transcript, environment)

        with self.datasets.using(request.datasets):  # pruning spares them until the run ends
            data = self.datasets.volume_mounts(request.datasets, run_id)
            result = once_more_if_vanished(self.env_cache, attempt, run_id=run_id, step="install")
        result.datasets = list(request.datasets)
        result.timings.total_s = round(time.monotonic() - started, 4)
        logger.bind(run_id=run_id).info(
            "run finished: status={} exit_code={} install_s={:.2f} execute_s={:.2f} "
            "total_s={:.2f} cache_hit={}",
            result.status,
            result.exit_code,
            result.timings.install_s,
            result.timings.execute_s,
            result.timings.total_s,
            result.install.cache_hit,
        )
        return result

    # -- steps --------------------------------------------------------------------
    def _environment(
        self, request: RunRequest, image: str, run_id: str, on_event: EventHandler | None
    ) -> Ready | InstallFailure | None:
        """The cached environment of the request's requirements; None: nothing, or per run."""
        mode = request.install_mode or self.settings.install_mode
        if not request.requirements or mode == "per_run" or self.env_cache is None:
            return None
        if on_event is not None:
            on_event(RunEvent(run_id, "phase", "installing"))
        requirements = list(request.requirements)
        return self.env_cache.get_or_install(requirements, image, run_id, imports_follow=True)

    # -- what a session asks of its executor (`SandboxProvider`) ----------------------
    @property
    def environments(self) -> Environments | None:
        return self.env_cache

    def resolve_image(self) -> str:
        return self.backend.resolve_image()

    def open_sandbox(self, order: SandboxOrder) -> SandboxLink:
        with self.datasets.using(
            order.datasets
        ):  # once its container exists, the engine holds them
            data = self.datasets.volume_mounts(order.datasets, order.run_id)
            spec = self.sandbox_spec(
                order.limits, order.image, order.run_id, lifetime=order.lifetime_s, data=data
            )
            return self.driver.open(
                spec,
                order.job,
                run_id=order.run_id,
                inputs=order.inputs,
                egress=order.limits.egress,
            )

    def sandbox_spec(
        self,
        limits: Limits,
        image: str,
        run_id: str,
        *,
        install: bool = False,
        lifetime: float = 0.0,
        data: tuple[VolumeMount, ...] = (),
    ) -> ContainerSpec:
        """The container of a run or a session; ``lifetime`` extends its deadline label;
        ``data``: its datasets' volumes."""
        mounts: tuple[VolumeMount, ...] = ()
        if self.env_cache is not None:  # every sandbox mounts it: one profile with the pool
            self.env_cache.prepare()  # else Docker would create the volume root-owned
            mounts = self.env_cache.run_mounts()
        mounts += data
        return build_spec(
            self.settings,
            limits,
            image=image,
            run_id=run_id,
            controller_id=self.controller_id,
            needs_install=install,
            mounts=mounts,
            extra_lifetime_s=lifetime,
        )

    def _drive(
        self,
        request: RunRequest,
        limits: Limits,
        image: str,
        run_id: str,
        environment: Ready | None,
        on_event: EventHandler | None,
        cancel: threading.Event | None,
        artifacts_dir: Path | None,
        data: tuple[VolumeMount, ...],
    ) -> Transcript:
        env = environment.env if environment is not None else None
        per_run_install = bool(request.requirements) and env is None
        job = run_job(self.settings, request, limits, env.path if env is not None else None)
        # A set not compiled yet: its imports say what to compile first (`EnvCache.imported`).
        job.report_imports = env is not None and not env.compiled
        if data and not per_run_install:  # the next run of these datasets takes a warm one
            self._data_profiles.keep(
                lambda pool_id: self.sandbox_spec(
                    limits, image, pool_id, data=data, lifetime=self._pool_lifetime()
                )
            )
        assignment = Assignment(
            spec=self.sandbox_spec(limits, image, run_id, install=per_run_install, data=data),
            job=job,
            inputs=[item.data for item in request.files],
            code_timeout_s=limits.timeout_s,
            egress=limits.egress,
        )
        if env is not None:
            self._keep_warm(list(request.requirements), env)
        in_use = self.env_cache.using(env.key) if env and self.env_cache else nullcontext()
        transcript: Transcript | None = None
        try:
            with in_use:
                transcript = self.driver.drive(
                    assignment,
                    run_id=run_id,
                    on_event=on_event,
                    cancel=cancel,
                    artifacts_dir=artifacts_dir,
                    defer_removal=True,  # answer at the result; the container goes after it
                )
        finally:
            if job.report_imports and env is not None and self.env_cache is not None:
                frame = transcript.result if transcript is not None else None
                self.env_cache.imported(env.key, frame.imported if frame is not None else [])
        return transcript

    def _result(
        self,
        run_id: str,
        image: str,
        request: RunRequest,
        transcript: Transcript,
        environment: Ready | None,
    ) -> RunResult:
        result = run_result(run_id, image, request, transcript, self.settings)
        if environment is None:
            return result
        env, hit = environment.env, environment.hit
        result.install = result.install.model_copy(
            update={
                "cache_hit": hit,
                "mode": "cache",
                "packages": list(env.packages),
                "installer": env.installer,
                "fallback_triggered": env.fallback_triggered and not hit,
                "log_tail": "" if hit else env.log_tail,
            }
        )
        result.timings.install_s = 0.0 if hit else round(env.install_s, 4)
        return result


def _normal(requirements: Iterable[str]) -> tuple[str, ...]:
    """A requirement set as the cache tells sets apart: names normalised, order ignored."""
    return tuple(sorted(normal_requirement(line) for line in requirements))
