"""Fixtures for the integration suite: real Docker engine, real sandbox image, real daemon.

Docker must be reachable: when it is not, every test here fails (CI guarantees an
engine, so a silent skip would hide a broken pipeline). Nothing is ever pulled;
the sandbox image is ``AI_DATA_AGENT_SANDBOX_IMAGE`` when set, else whatever the
default resolves to (locally: the fallback ``ai-data-agent/base:bookworm``).

These are the suite's shared fixtures (the engine client, settings, executors,
daemons); the folders below add only their own. After each test an autouse
check asserts that no container labelled ``ai-data-agent.managed`` (by one of
this session's executors) is left, and removes any it finds so that one leak
does not fail every later test too.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Before testcontainers is imported anywhere: no Ryuk reaper container (it would
# have to be pulled, and the leak check below does its job).
os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"

import docker
import docker.errors
import pytest

from ai_data_agent import Executor, RunRequest, RunResult, Settings
from ai_data_agent.executor.docker.backend import DockerBackend
from ai_data_agent.executor.spec import LABEL_CONTROLLER, LABEL_MANAGED, LABEL_RUN_ID
from tests.support.controller_image import ensure_controller_image
from tests.support.daemon import Daemon
from tests.support.settings import build_settings, ca_bundle, sandbox_image

# A run answers at its result and its container goes right after, in the background.
REMOVAL_GRACE_S = 15.0

# Small limits keep runs fast; tests that need other values build their own
# Settings with `make_settings`.
BASE_SETTINGS: dict[str, Any] = {
    "pull_missing_image": False,  # never pull: no registry here, and CI must not depend on one
    "default_timeout_s": 30.0,
    "max_timeout_s": 60.0,
    "default_memory_mb": 512,
    "max_memory_mb": 1024,
    "memory_reservation_mb": 128,
    "default_cpus": 1.0,
    "max_cpus": 1.0,
    "pids_limit": 128,
    "tmpfs_mb": 512,
    "install_timeout_s": 120.0,
    "stdout_limit_bytes": 256 * 1024,
    "stderr_limit_bytes": 256 * 1024,
    "stop_grace_s": 2.0,
    # The per-run pip install into each run's sandbox dir; the environment
    # cache and uv have tests of their own (test_speed.py, the battery).
    "install_mode": "per_run",
    "installer": "pip",
}


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The engine the executor talks to; a failure (not a skip) when it is missing."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        problem = f"{type(exc).__name__}: {exc}"
    else:
        problem = None
    if problem is not None:  # outside the except: the message, not a chain of tracebacks
        pytest.fail(f"integration tests need a reachable Docker engine: {problem}", pytrace=False)
    yield client
    client.close()


@pytest.fixture(scope="session")
def settings_kwargs() -> dict[str, Any]:
    """The keyword arguments of the suite's `Settings` (copy before changing)."""
    kwargs = dict(BASE_SETTINGS, ca_bundle=ca_bundle())
    if sandbox_image():
        kwargs["sandbox_image"] = sandbox_image()
    return kwargs


@pytest.fixture(scope="session")
def make_settings(settings_kwargs: dict[str, Any]) -> Callable[..., Settings]:
    """Build `Settings` from the suite's kwargs plus overrides, ignoring the environment.

    ``without`` names keyword arguments to leave out (so the field keeps its
    default and does not count as set explicitly).
    """

    def build(*, without: tuple[str, ...] = (), **overrides: Any) -> Settings:
        values = {**settings_kwargs, **overrides}
        return build_settings({k: v for k, v in values.items() if k not in without})

    return build


@pytest.fixture(scope="session")
def controller_image(docker_client: docker.DockerClient) -> str:
    """The controller image, built once a session when missing or older than the code."""
    return ensure_controller_image(docker_client)


@pytest.fixture(scope="session")
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


def _close(executor: Executor) -> None:
    # Background work (bytecode compiles, staging volumes, deferred removals)
    # ends here, inside the test that started it, before the leak check.
    executor.close()


@pytest.fixture(scope="session")
def our_controllers() -> set[str]:
    """Controller ids of every executor this session made (the leak check's scope)."""
    return set()


@pytest.fixture(scope="session")
def executor(
    settings: Settings, docker_client: docker.DockerClient, our_controllers: set[str]
) -> Iterator[Executor]:
    executor = Executor(settings)
    our_controllers.add(executor.controller_id)
    yield executor
    _close(executor)


@pytest.fixture
def make_executor(
    docker_client: docker.DockerClient, our_controllers: set[str]
) -> Iterator[Callable[..., Executor]]:
    """Executors for one test (settings, optionally a backend of its own); closed after it."""
    made: list[Executor] = []

    def build(settings: Settings, backend: DockerBackend | None = None) -> Executor:
        made.append(Executor(settings, backend=backend))
        our_controllers.add(made[-1].controller_id)
        return made[-1]

    yield build
    for executor in made:
        _close(executor)


def _labels(container: Any) -> dict[str, str]:
    return container.attrs.get("Labels") or {}


@pytest.fixture(autouse=True)
def no_leaked_sandboxes(
    docker_client: docker.DockerClient, our_controllers: set[str]
) -> Iterator[None]:
    """After each test: no sandbox of this session's executors may be left.

    Containers of other controllers on the same engine (a developer's daemon,
    a parallel session) are neither counted nor touched: they are not ours to
    remove. In CI the engine runs nothing else.
    """
    yield
    gc.collect()  # leaked sockets warn now, inside this test, not in an unrelated one
    deadline = time.monotonic() + REMOVAL_GRACE_S
    while True:
        # sparse: no inspect per container, so one that goes away meanwhile is no error.
        managed = docker_client.containers.list(
            all=True, filters={"label": LABEL_MANAGED}, sparse=True
        )
        leaked = [c for c in managed if _labels(c).get(LABEL_CONTROLLER) in our_controllers]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.1)  # a run's container is removed in the background after its answer
    described = [
        f"{c.short_id} ({c.attrs.get('State')}, run {_labels(c).get(LABEL_RUN_ID)})" for c in leaked
    ]
    for container in leaked:
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
    assert not leaked, f"sandbox containers left behind: {described}"


@pytest.fixture
def probe(executor: Executor) -> Callable[..., tuple[RunResult, dict[str, Any]]]:
    """Run code whose last stdout line is a JSON object; return the result and that object.

    Fails with the run's stderr and error when the run did not succeed.
    """

    def run(
        code: str, *, using: Executor | None = None, **request: Any
    ) -> tuple[RunResult, dict[str, Any]]:
        result = (using or executor).run(RunRequest(code=code, **request))
        assert result.status == "succeeded", (
            f"probe run {result.status}: error={result.error!r}\n"
            f"stderr:\n{result.stderr[-3000:]}\ninstall log:\n{result.install.log_tail[-2000:]}"
        )
        lines = result.stdout.strip().splitlines()
        assert lines, "the probe printed nothing"
        facts = json.loads(lines[-1])
        assert isinstance(facts, dict)
        return result, facts

    return run


@pytest.fixture
def container_events(docker_client: docker.DockerClient) -> Callable[[str, float], list[str]]:
    """Actions (create, start, die, destroy, ...) of containers of one run since a time."""

    def events(run_id: str, since: float) -> list[str]:
        stream = docker_client.api.events(
            since=f"{since - 1:.9f}",
            until=f"{time.time():.9f}",
            filters={"type": "container", "label": f"{LABEL_RUN_ID}={run_id}"},
            decode=True,
        )
        return [str(event.get("Action") or event.get("status")) for event in stream]

    return events


@pytest.fixture
def start_daemon(
    settings_kwargs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Daemon]]:
    """Start daemons with the suite's settings plus overrides; all are stopped after the
    test, and their logs shown when it fails.

        daemon = start_daemon(max_concurrent_runs=1)                  # a fresh data dir
        daemon = start_daemon(data_dir, extra_env={"DOCKER_HOST": url})
    """
    started: list[Daemon] = []

    def start(
        data_dir: Path | None = None, *, extra_env: dict[str, str] | None = None, **overrides: Any
    ) -> Daemon:
        directory = data_dir or tmp_path_factory.mktemp("daemon-data")
        started.append(
            Daemon.start(directory, {**settings_kwargs, **overrides}, extra_env=extra_env)
        )
        return started[-1]

    yield start
    for daemon in started:
        daemon.stop()
        print(f"--- daemon log ({daemon.url}) ---\n{daemon.log()}")  # shown if the test failed
