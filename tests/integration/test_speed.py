"""Environment cache, uv with pip fallback, and the warm pool, against the real engine.

Behaviour only: speed is measured by `make bench`, never here.
"""

from __future__ import annotations

import json
import stat
import threading
import time
from pathlib import Path

import docker
import docker.errors
import pytest

from ai_data_agent import Executor, RunRequest, RunStatus, Settings
from ai_data_agent.executor.env import CACHE_VOLUME
from ai_data_agent.executor.spec import ENVS_MOUNT, LABEL_CONTROLLER, LABEL_MANAGED
from ai_data_agent.sandbox.environment import ENV_MANIFEST
from tests.support.logs import LogLine
from tests.support.settings import build_settings, ca_bundle

pytestmark = pytest.mark.integration

HOSTNAME_CODE = "import socket; print(socket.gethostname())"


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "ca_bundle": ca_bundle(),
        "env_cache_index": tmp_path / "envcache.sqlite3",
        "default_timeout_s": 60,
    }
    return build_settings({**values, **overrides})


def _managed_containers(executor: Executor) -> list[str]:
    """This executor's sandboxes (other controllers may share the engine)."""
    client = docker.from_env()
    label = f"{LABEL_CONTROLLER}={executor.controller_id}"
    return [
        c.id
        for c in client.containers.list(
            all=True, filters={"label": [LABEL_MANAGED, label]}, sparse=True
        )
    ]


def forget_everywhere(executor: Executor, requirements: list[str]) -> None:
    """Remove the set from the shared volume too, so the next run installs it (not adopts it)."""
    assert executor.env_cache is not None
    image = executor.backend.resolve_image()
    key = executor.env_cache.key_for(requirements, image, "test-forget")
    executor.env_cache.prune(keys=[key])


def test_second_run_of_a_set_is_a_cache_hit_from_a_read_only_env(
    tmp_path: Path, log_lines: list[LogLine]
) -> None:
    executor = Executor(_settings(tmp_path))
    forget_everywhere(executor, ["six"])
    code = (
        "import os, six\n"
        "print(six.__file__)\n"
        "try:\n"
        "    open(os.path.join(os.path.dirname(six.__file__), 'poison.py'), 'w')\n"
        "except OSError as exc:\n"
        "    print('write refused', exc.errno)\n"
        "print(sorted(os.listdir('/sys/class/net')))\n"
    )
    first = executor.run(RunRequest(code=code, requirements=["six"]))
    installed = [line.message for line in log_lines]
    log_lines.clear()
    second = executor.run(RunRequest(code=code, requirements=["six"]))
    reused = [line.message for line in log_lines]

    # "Successfully installed" only where something was installed; a hit says so instead.
    assert any(m.startswith("sandbox: Successfully installed six==") for m in installed)
    assert not any("Successfully installed" in m for m in reused), reused
    assert any(m.startswith("environment cache hit: ") for m in reused), reused
    assert first.status == RunStatus.SUCCEEDED, first.error
    assert second.status == RunStatus.SUCCEEDED, second.error
    assert (first.install.cache_hit, second.install.cache_hit) == (False, True)
    assert first.install.mode == second.install.mode == "cache"
    assert first.install.installer == "uv" and not first.install.fallback_triggered
    assert [p.name for p in second.install.packages] == ["six"]
    assert second.timings.install_s == 0.0
    path, refused, interfaces = second.stdout.splitlines()
    assert path.startswith(ENVS_MOUNT + "/")
    assert refused.startswith("write refused")  # read-only: no run can poison the cache
    assert interfaces == "['lo']"


def test_concurrent_requests_for_one_set_install_it_once(tmp_path: Path) -> None:
    executor = Executor(_settings(tmp_path))
    results = []
    lock = threading.Lock()
    # A set no earlier run on this engine had (the cache volume outlives test runs): a
    # marker that is never true makes its key new and installs nothing more.
    never = f"sqlparse ; python_version < '2.0.{time.time_ns()}'"

    def one() -> None:
        request = RunRequest(code="import six", requirements=["six==1.16.0", never])
        result = executor.run(request)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert [r.status for r in results] == [RunStatus.SUCCEEDED] * 3, [r.error for r in results]
    assert sorted(r.install.cache_hit for r in results) == [False, True, True]
    assert executor.env_cache is not None
    assert len(executor.env_cache.index.all()) == 1


def test_a_uv_that_cannot_run_falls_back_to_pip(tmp_path: Path, log_lines: list[LogLine]) -> None:
    broken_uv = tmp_path / "uv"
    broken_uv.write_bytes(b"\x7fELF not really a program")  # exec fails: ENOEXEC
    broken_uv.chmod(broken_uv.stat().st_mode | stat.S_IXUSR)
    executor = Executor(_settings(tmp_path, uv_binary=broken_uv))
    forget_everywhere(executor, ["six"])

    result = executor.run(RunRequest(code="import six; print('ok')", requirements=["six"]))

    assert result.status == RunStatus.SUCCEEDED, result.error
    assert result.install.fallback_triggered is True
    assert result.install.installer == "pip"
    assert any(
        line.message.startswith("sandbox: fallback_triggered: uv cannot run here")
        for line in log_lines
    )


def test_a_package_that_does_not_exist_fails_with_uv_without_fallback(tmp_path: Path) -> None:
    executor = Executor(_settings(tmp_path))

    result = executor.run(RunRequest(code="pass", requirements=["no-such-package-ai-data-agent-x"]))

    assert result.status == RunStatus.INSTALL_FAILED
    assert (result.install.installer, result.install.fallback_triggered) == ("uv", False)
    assert result.error is not None
    assert result.error.startswith("no matching distribution: ")
    assert "no-such-package-ai-data-agent-x" in result.error
    assert result.error.endswith("(check the requirement's name and version)")
    assert executor.env_cache is not None and executor.env_cache.index.all() == []


def test_pruned_environment_is_installed_again(tmp_path: Path) -> None:
    executor = Executor(_settings(tmp_path))
    first = executor.run(RunRequest(code="import six", requirements=["six"]))
    assert executor.env_cache is not None
    keys = [env.key for env in executor.env_cache.index.all()]
    # A hit of an environment whose bytecode is unfinished compiles the rest in the
    # background, and pruning spares an environment in use: wait for it first.
    executor.env_cache.close()

    assert executor.env_cache.prune(keys=keys) == keys
    again = executor.run(RunRequest(code="import six", requirements=["six"]))

    assert first.status == again.status == RunStatus.SUCCEEDED
    assert again.install.cache_hit is False


def test_per_run_mode_installs_into_the_sandbox_dir(tmp_path: Path) -> None:
    executor = Executor(_settings(tmp_path))

    result = executor.run(
        RunRequest(
            code="import six; print(six.__file__)", requirements=["six"], install_mode="per_run"
        )
    )

    assert result.status == RunStatus.SUCCEEDED, result.error
    assert result.install.mode == "per_run" and result.install.cache_hit is False
    assert result.stdout.startswith(result.environment.sandbox_dir + "/six.py")


def _wait_for_idle(executor: Executor, count: int) -> None:
    assert executor.pool is not None
    deadline = time.monotonic() + 60
    while executor.pool.idle_count() < count:
        assert time.monotonic() < deadline, f"pool still has {executor.pool.idle_count()} idle"
        time.sleep(0.05)


def test_pool_gives_each_run_its_own_never_reused_container(tmp_path: Path) -> None:
    with Executor(_settings(tmp_path, pool_size=1)) as executor:
        executor.start_pool()
        hosts = []
        for _ in range(3):
            _wait_for_idle(executor, 1)
            result = executor.run(RunRequest(code=HOSTNAME_CODE))
            assert result.status == RunStatus.SUCCEEDED, result.error
            hosts.append(result.stdout.strip())
            # The container that ran the code goes right after the result (in the
            # background, with the pool): gone within moments, never reused.
            deadline = time.monotonic() + 10
            while [c for c in _managed_containers(executor) if c.startswith(hosts[-1])]:
                assert time.monotonic() < deadline, f"{hosts[-1]} was not removed"
                time.sleep(0.05)
        assert executor.pool is not None and executor.pool.taken == 3
        assert len(set(hosts)) == 3
    assert _managed_containers(executor) == []  # drained on close


def test_pool_serves_cached_environments_and_other_limits_start_fresh(tmp_path: Path) -> None:
    with Executor(_settings(tmp_path, pool_size=1)) as executor:
        executor.start_pool()
        warm = executor.run(RunRequest(code="import six", requirements=["six"]))  # installs
        _wait_for_idle(executor, 1)
        assert executor.pool is not None
        taken = executor.pool.taken
        hit = executor.run(RunRequest(code="import six; print('ok')", requirements=["six"]))
        assert executor.pool.taken == taken + 1  # a cache hit runs in a pooled sandbox
        other = executor.run(RunRequest(code="print('ok')", memory_mb=512))
        assert executor.pool.taken == taken + 1  # another profile: a fresh container

    assert warm.status == hit.status == other.status == RunStatus.SUCCEEDED
    assert hit.install.cache_hit and hit.stdout == "ok\n"
    assert _managed_containers(executor) == []


PROBE_CODE = """
import json, os, socket, sys
try:
    open(f"/proc/{os.getppid()}/mem", "rb").read(1)
    runner_memory = "readable"
except OSError as exc:
    runner_memory = type(exc).__name__
print(json.dumps({
    "host": socket.gethostname(),
    "uid": os.getuid(),
    "interfaces": [name for _, name in socket.if_nameindex()],
    "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
    "runner_memory": runner_memory,
    "six_loaded": "six" in sys.modules,
}))
"""


def _wait_for_profiles(executor: Executor, timeout_s: float = 120) -> None:
    """Every pool profile holds what it targets (the pre-imported one included)."""
    assert executor.pool is not None
    executor.driver.close()  # deferred removals of earlier runs
    deadline = time.monotonic() + timeout_s
    while not all(p.idle >= p.target for p in executor.pool.profiles()):
        assert time.monotonic() < deadline, executor.pool.profiles()
        time.sleep(0.05)


def test_a_prewarmed_set_runs_in_its_own_pre_imported_never_reused_sandboxes(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path, pool_size=1, pool_recent_sets=0, prewarm=[["six"]])
    with Executor(settings) as executor:
        executor.start_pool()
        first = executor.run(RunRequest(code="pass", requirements=["six"]))  # the profile
        assert first.status == RunStatus.SUCCEEDED, first.error
        runs = []
        for _ in range(2):
            _wait_for_profiles(executor)
            runs.append(executor.run(RunRequest(code=PROBE_CODE, requirements=["six"])))
        _wait_for_profiles(executor)
        other = executor.run(RunRequest(code=PROBE_CODE))  # no set: a plain sandbox
        assert executor.pool is not None
        states = {p.name: p for p in executor.pool.profiles()}

    assert [r.status for r in [*runs, other]] == [RunStatus.SUCCEEDED] * 3, other.error
    facts = [json.loads(r.stdout) for r in [*runs, other]]
    assert [r.environment.preimported for r in runs] == [["six"], ["six"]]
    assert other.environment.preimported == []
    assert [f["six_loaded"] for f in facts] == [True, True, False]
    assert len({f["host"] for f in facts}) == 3  # each run its own container
    for fact in facts:  # user code as before: uid 1000, only lo, no runner pipes or memory
        assert fact["uid"] == 1000 and fact["interfaces"] == ["lo"]
        assert fact["fds"] == [0, 1, 2, 3]  # 3: the listing's own
        assert fact["runner_memory"] == "PermissionError"
    warm = [p for name, p in states.items() if name != "plain"]
    assert len(warm) == 1 and warm[0].modules == ("six",) and warm[0].taken == 2
    assert 0 < warm[0].rss_mb < 150
    assert _managed_containers(executor) == []


def test_a_first_run_without_requirements_leaves_the_cache_usable(tmp_path: Path) -> None:
    # Docker creates a missing named volume root-owned when a container mounts it;
    # the executor must prepare the cache volume before the first sandbox mounts it.
    client = docker.from_env()
    try:
        client.volumes.get(CACHE_VOLUME).remove(force=True)
    except docker.errors.NotFound:
        pass
    finally:
        client.close()
    with Executor(_settings(tmp_path)) as executor:
        plain = executor.run(RunRequest(code="print('no requirements')"))
        installed = executor.run(RunRequest(code="import six", requirements=["six"]))

    assert plain.status == RunStatus.SUCCEEDED, plain.error
    assert installed.status == RunStatus.SUCCEEDED, installed.error


def test_an_environment_lost_from_the_volume_is_installed_again(tmp_path: Path) -> None:
    with Executor(_settings(tmp_path)) as executor:
        first = executor.run(RunRequest(code="import six", requirements=["six"]))
        executor.driver.close()  # its container goes after the answer: then nothing mounts it
        client = docker.from_env()
        try:  # an operator's `docker volume rm` (or prune) behind the index's back
            client.volumes.get(CACHE_VOLUME).remove(force=True)
        finally:
            client.close()
        again = executor.run(RunRequest(code="import six; print('ok')", requirements=["six"]))
        third = executor.run(RunRequest(code="import six; print('ok')", requirements=["six"]))

    assert first.status == again.status == third.status == RunStatus.SUCCEEDED, again.error
    assert again.install.cache_hit is False and again.stdout == "ok\n"
    assert third.install.cache_hit is True


def test_an_environment_left_incomplete_on_the_volume_is_installed_again(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    requirement = "six==1.15.0"
    with Executor(_settings(tmp_path)) as executor:
        forget_everywhere(executor, [requirement])
        first = executor.run(RunRequest(code="import six", requirements=[requirement]))
        assert executor.env_cache is not None
        [env] = executor.env_cache.index.all()
        # What a stray write leaves under the key: a directory, no manifest, no package.
        docker_client.containers.run(
            executor.backend.resolve_image(),
            [
                "sh",
                "-c",
                f"rm -rf /envs/{env.key}/* /envs/{env.key}/{ENV_MANIFEST}"
                f" && mkdir -p /envs/{env.key}/six/__pycache__",
            ],
            volumes={CACHE_VOLUME: {"bind": "/envs", "mode": "rw"}},
            user="0",
            remove=True,
            network_mode="none",
        )
        again = executor.run(
            RunRequest(code="import six; print(six.__version__)", requirements=[requirement])
        )
        third = executor.run(RunRequest(code="import six", requirements=[requirement]))

    assert first.status == again.status == third.status == RunStatus.SUCCEEDED, again.error
    assert again.install.cache_hit is False and again.stdout == "1.15.0\n"
    assert third.install.cache_hit is True
