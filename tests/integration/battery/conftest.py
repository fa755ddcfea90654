"""The hostile battery's shared machinery: one `Battery` per test, and the host checks.

Every test runs hostile code (or input) through the public interface, asserts
the clear outcome, then calls ``battery.assert_host_unchanged()``, which checks
that

* no container, volume or network labelled ``ai-data-agent.managed`` of this
  test's controllers (or runs) is left, listed with the Docker SDK;
* no host process still belongs to a container of this test (by cgroup, and
  by command line for runsc's sandbox and gofer processes);
* a benign run right after succeeds.

Example::

    def test_busy_loop_times_out(battery: Battery) -> None:
        outcome = battery.run("while True: pass", timeout_s=2)
        assert outcome.result.status == "timed_out"
        battery.assert_host_unchanged()

The leak check is scoped to this test's controllers and run ids rather than to
every managed container: on a shared engine another controller's sandbox in
flight is not this test's leak, and removing it would break someone else's run.
On CI nothing else runs, so the scope makes no difference there.

Variants: parametrize ``battery`` indirectly with ``"runc"``, ``"runsc"`` or
``"preimported"`` (`VARIANTS`). The runsc variant fails (never skips) when
Docker does not list the runtime: CI registers it with scripts/setup-gvisor.sh
before the suite. The preimported variant runs on runc with a warm pool that
keeps a pre-imported profile of `PREIMPORT_SET`: every run takes a sandbox of
that profile (it waits for one) and fails unless the result says its modules
were imported before the code came; the pool's idle sandboxes are not leaks.
"""

from __future__ import annotations

import gc
import os
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

from ai_data_agent import Executor, RunEvent, RunRequest, RunResult, Settings
from ai_data_agent.executor.docker.backend import DockerBackend
from ai_data_agent.executor.spec import LABEL_CONTROLLER, LABEL_MANAGED, LABEL_RUN_ID
from tests.support.settings import build_settings
from tests.support.wait import poll

# The suite's settings (tests/integration/conftest.py) but for these: the pids
# limit, the output caps and the installer keep their defaults on purpose (those
# defaults are what the battery proves), and the limits are smaller still.
DEFAULTS_PROVED = (
    "pids_limit",
    "stdout_limit_bytes",
    "stderr_limit_bytes",
    "install_mode",
    "installer",
)
BATTERY_OVERRIDES: dict[str, Any] = {
    "default_timeout_s": 10.0,
    "memory_reservation_mb": 64,
    "tmpfs_mb": 256,
}
RUNTIMES = ("runc", "runsc")
PREIMPORTED = "preimported"
VARIANTS = (*RUNTIMES, PREIMPORTED)
# Small, and already on the suite's cache volume: the pooled variant costs little.
PREIMPORT_SET = ["six"]
POOLED_SETTINGS: dict[str, Any] = {
    "pool_size": 1,
    "pool_recent_sets": 0,
    "prewarm": [PREIMPORT_SET],
}
BENIGN_CODE = "print('still fine')"


def host_processes_of(container_ids: set[str]) -> list[str]:
    """Host processes whose cgroup or command line names one of the containers."""
    if not container_ids:
        return []
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cgroup") as fh:
                cgroup = fh.read()
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone while we looked
        if any(cid in cgroup or cid in cmdline for cid in container_ids):
            found.append(f"{entry.name}: {cmdline[:120]}")
    return found


def host_process_count() -> int:
    return sum(1 for entry in os.scandir("/proc") if entry.name.isdigit())


@dataclass
class Outcome:
    """A finished run and what the battery saw of it."""

    result: RunResult
    elapsed_s: float  # the whole Executor.run call
    running_s: float | None  # from the "running" phase to the end of the call
    phases: list[str]


@dataclass
class Battery:
    """Runs code through `Executor.run` and checks the host afterwards (see module doc)."""

    engine: docker.DockerClient
    make_settings: Callable[..., Settings]
    runtime: str = "runc"
    preimported: bool = False  # every run in a sandbox of a pre-imported pool profile
    started_at: float = field(default_factory=time.time)
    controllers: set[str] = field(default_factory=set)
    run_ids: set[str] = field(default_factory=set)
    _executors: dict[str, Executor] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return self.executor().settings

    def executor(self, **overrides: Any) -> Executor:
        """An executor with the battery's settings (plus overrides); one per distinct set."""
        key = repr(sorted(overrides.items()))
        if key not in self._executors:
            pooled = POOLED_SETTINGS if self.preimported else {}
            executor = Executor(self.make_settings(runtime=self.runtime, **pooled, **overrides))
            self._executors[key] = executor
            self.controllers.add(executor.controller_id)
            if self.preimported:
                self._make_profile(executor)
        return self._executors[key]

    def _make_profile(self, executor: Executor) -> None:
        """The set's first run (a cache hit, or its install) makes its pool profile."""
        executor.start_pool()
        first = executor.run(
            RunRequest(code="pass", requirements=PREIMPORT_SET), run_id=self.new_run_id()
        )
        assert first.status == "succeeded", (first.error, first.stderr[-500:])

    def _await_preimported(self, executor: Executor) -> None:
        pool = executor.pool
        assert pool is not None, "the preimported variant needs a warm pool"
        poll(
            lambda: any(p.name != "plain" and p.idle for p in pool.profiles()),
            timeout_s=120,
            what="an idle pre-imported sandbox",
            diagnostics=pool.profiles,
        )

    def new_run_id(self) -> str:
        run_id = f"battery-{uuid.uuid4().hex}"
        self.run_ids.add(run_id)
        return run_id

    def run(
        self,
        code: str,
        *,
        using: Executor | None = None,
        on_event: Callable[[RunEvent], None] | None = None,
        artifacts_dir: Path | None = None,
        **request: Any,
    ) -> Outcome:
        executor = using or self.executor()
        self.controllers.add(executor.controller_id)
        phases: list[str] = []
        running_at: list[float] = []

        def seen(event: RunEvent) -> None:
            if event.kind == "phase":
                phases.append(event.data)
                if event.data == "running":
                    running_at.append(time.monotonic())
            if on_event is not None:
                on_event(event)

        if self.preimported:
            request.setdefault("requirements", PREIMPORT_SET)
            self._await_preimported(executor)
        started = time.monotonic()
        result = executor.run(
            RunRequest(code=code, **request),
            run_id=self.new_run_id(),
            on_event=seen,
            artifacts_dir=artifacts_dir,
        )
        ended = time.monotonic()
        running_s = ended - running_at[0] if running_at else None
        if self.preimported:
            assert result.environment.preimported == PREIMPORT_SET, (
                f"not a pre-imported sandbox: {result.environment}"
            )
        return Outcome(result, ended - started, running_s, phases)

    # -- host checks -------------------------------------------------------------
    def _ours(self, labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        return (
            labels.get(LABEL_CONTROLLER) in self.controllers
            or labels.get(LABEL_RUN_ID) in self.run_ids
        )

    def pooled(self) -> set[str]:
        """The containers idle in this test's warm pools: kept on purpose, not leaks."""
        return {
            container
            for executor in self._executors.values()
            if executor.pool is not None
            for container in executor.pool.idle_ids()
        }

    def leftovers(self) -> list[str]:
        """Managed containers, volumes and networks of this test still on the engine
        (the staging volume a live executor keeps ready for its next install aside)."""
        api = self.engine.api
        spares = {
            executor.env_cache.staging.spare()
            for executor in self._executors.values()
            if executor.env_cache is not None
        }
        pooled = self.pooled()
        found = [
            f"container {c['Id'][:12]} ({c.get('State')})"
            for c in api.containers(all=True, filters={"label": LABEL_MANAGED})
            if self._ours(c.get("Labels")) and c["Id"] not in pooled
        ]
        volumes = api.volumes(filters={"label": LABEL_MANAGED}).get("Volumes") or []
        found += [
            f"volume {v['Name']}"
            for v in volumes
            if self._ours(v.get("Labels")) and v["Name"] not in spares
        ]
        found += [
            f"network {n['Name']}"
            for n in api.networks(filters={"label": LABEL_MANAGED})
            if self._ours(n.get("Labels"))
        ]
        return found

    def container_ids(self) -> set[str]:
        """Every container this test's controllers or runs created (from the event log)."""
        ids: set[str] = set()
        filters = [f"{LABEL_CONTROLLER}={c}" for c in self.controllers]
        filters += [f"{LABEL_RUN_ID}={r}" for r in self.run_ids]
        for label in filters:
            events = self.engine.api.events(
                since=f"{self.started_at - 1:.9f}",
                until=f"{time.time():.9f}",
                filters={"type": "container", "event": "create", "label": label},
                decode=True,
            )
            ids |= {str(e.get("id") or e.get("Actor", {}).get("ID")) for e in events}
        return ids

    def assert_no_leftovers(self) -> None:
        poll(
            lambda: not self.leftovers(),
            timeout_s=10,
            what="no containers, volumes or networks left",
            diagnostics=lambda: f"left behind: {self.leftovers()}",
        )
        ids = self.container_ids()
        poll(
            lambda: not host_processes_of(ids - self.pooled()),
            timeout_s=10,
            what="no host processes of finished sandboxes",
            diagnostics=lambda: host_processes_of(ids - self.pooled()),
        )

    def assert_host_unchanged(self) -> None:
        """Nothing left behind, and the executor still serves a benign run."""
        self.assert_no_leftovers()
        after = self.run(BENIGN_CODE)
        assert after.result.status == "succeeded", (after.result.error, after.result.stderr[-500:])
        assert after.result.stdout == "still fine\n"
        self.assert_no_leftovers()

    def close(self) -> None:
        for executor in self._executors.values():
            close = getattr(executor, "close", None)
            if close is not None:
                close()
            if isinstance(executor.backend, DockerBackend):
                executor.backend.client.close()
        # A finished session may leave docker-py's SocketIO of its attach socket to
        # the garbage collector: collect it here, not as a ResourceWarning in a later test.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


def registered_runtimes(engine: docker.DockerClient) -> set[str]:
    return set((engine.info().get("Runtimes") or {}).keys())


@pytest.fixture(scope="session")
def battery_kwargs(
    settings_kwargs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The battery's `Settings` keyword arguments (its daemons get them too)."""
    kwargs = {k: v for k, v in settings_kwargs.items() if k not in DEFAULTS_PROVED}
    return {**kwargs, **BATTERY_OVERRIDES, "data_dir": tmp_path_factory.mktemp("battery-data")}


@pytest.fixture(scope="session")
def battery_settings(battery_kwargs: dict[str, Any]) -> Callable[..., Settings]:
    """Build `Settings` from the battery's values plus overrides, ignoring the environment."""
    return lambda **overrides: build_settings({**battery_kwargs, **overrides})


@pytest.fixture
def battery(
    request: pytest.FixtureRequest,
    docker_client: docker.DockerClient,
    battery_settings: Callable[..., Settings],
) -> Iterator[Battery]:
    """A `Battery` on runc, or on the variant given by indirect parametrization."""
    variant = getattr(request, "param", "runc")
    runtime = "runc" if variant == PREIMPORTED else variant
    if runtime != "runc" and runtime not in registered_runtimes(docker_client):
        pytest.fail(
            f"the Docker engine has no {runtime!r} runtime (it lists "
            f"{sorted(registered_runtimes(docker_client))}); run scripts/setup-gvisor.sh",
            pytrace=False,
        )
    battery = Battery(
        docker_client, battery_settings, runtime=runtime, preimported=variant == PREIMPORTED
    )
    yield battery
    battery.close()
    assert not battery.leftovers(), f"left behind: {battery.leftovers()}"


@pytest.fixture(autouse=True)
def no_leaked_sandboxes() -> None:
    """Replaces the suite-wide check for this folder: `battery` checks by its own scope
    (a suite-wide sweep would remove other controllers' sandboxes in flight)."""
