"""``kill -9`` of the daemon at each step of a run; after a restart the record is
`interrupted` and no labelled container remains within 60 s.

The step is recognised from outside: the record's status (queued), the
container's existence (creating) and the processes ``docker top`` lists in it
(pip: installing; the code's ``sleep``: running; the runner, ``python3 -I -S -c``,
without the code's interpreter, ``python3 -c``, once the code began: collecting).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from ai_data_agent.executor.spec import LABEL_RUN_ID
from tests.support.daemon import Daemon
from tests.support.engines import PrivateEngine
from tests.support.wait import poll

pytestmark = [
    pytest.mark.integration,
    # Docker clients made while the private engine restarts can leave a unix
    # socket to the garbage collector; that is test plumbing, not the daemon
    # (a separate process, whose sockets this process never sees).
    pytest.mark.filterwarnings(r"ignore:unclosed <socket\.socket:ResourceWarning"),
]

SLEEPER = "import time; time.sleep(60)"
RUNNING = "import subprocess; subprocess.run(['sleep', '60'])"  # a process docker top shows
# Slow to collect: many artifacts, streamed after the code ends (which began with a sleep).
COLLECTED = (
    "import os, subprocess\n"
    "subprocess.run(['sleep', '1'])\n"
    "for i in range(60):\n"
    "    with open(f'outputs/f{i}.bin', 'wb') as fh:\n"
    "        fh.write(os.urandom(1 << 20))\n"
)


def container_of(client: docker.DockerClient, run_id: str) -> dict[str, Any] | None:
    found = client.api.containers(all=True, filters={"label": f"{LABEL_RUN_ID}={run_id}"})
    return found[0] if found else None


def processes(client: docker.DockerClient, container_id: str) -> str:
    try:
        top = client.api.top(container_id)
    except docker.errors.APIError:
        return ""
    return "\n".join(" ".join(row) for row in top.get("Processes") or [])


def kill_restart_and_check(daemon: Daemon, engine: PrivateEngine, run_ids: list[str]) -> None:
    daemon.kill()
    restarted = daemon.restart()
    try:
        poll(
            lambda: not engine.sandboxes(),
            timeout_s=60,
            what="no sandbox left on the private engine",
            diagnostics=engine.sandboxes,
            interval_s=0.5,
        )
        for run_id in run_ids:
            record = restarted.record(run_id)
            assert record["status"] == "interrupted", record
        with restarted.client() as client:
            response = client.post("/v1/runs", json={"code": "print('after')"})
        assert response.status_code == 200 and response.json()["stdout"] == "after\n"
    finally:
        restarted.stop()


@pytest.fixture
def daemon_on(
    on_private_engine: PrivateEngine, start_daemon: Callable[..., Daemon], tmp_path: Path
) -> Callable[..., Daemon]:
    def start(**settings: Any) -> Daemon:
        env = {"DOCKER_HOST": on_private_engine.url}
        return start_daemon(tmp_path / "data", extra_env=env, **settings)

    return start


def test_kill_9_while_queued(
    daemon_on: Callable[..., Daemon], on_private_engine: PrivateEngine
) -> None:
    daemon = daemon_on(max_concurrent_runs=1)
    client = on_private_engine.client()
    running = daemon.submit(SLEEPER)
    poll(
        lambda: container_of(client, running) is not None, timeout_s=30, what="the first container"
    )
    queued = daemon.submit(SLEEPER)
    assert daemon.record(queued)["status"] == "queued"

    kill_restart_and_check(daemon, on_private_engine, [running, queued])
    client.close()


def test_kill_9_while_creating(
    daemon_on: Callable[..., Daemon], on_private_engine: PrivateEngine
) -> None:
    daemon = daemon_on()
    client = on_private_engine.client()
    run_id = daemon.submit(SLEEPER)
    # As soon as the container exists, before its runner has started the code.
    poll(lambda: container_of(client, run_id) is not None, timeout_s=30, what="the container")

    kill_restart_and_check(daemon, on_private_engine, [run_id])
    client.close()


@pytest.mark.parametrize(
    ("code", "began", "marker", "absent"),
    [
        (RUNNING, "sleep 60", "sleep 60", None),
        (COLLECTED, "sleep 1", "-I -S -c", "python3 -c"),
    ],
    ids=["running", "collecting"],
)
def test_kill_9_while_running_or_collecting(
    daemon_on: Callable[..., Daemon],
    on_private_engine: PrivateEngine,
    code: str,
    began: str,
    marker: str,
    absent: str | None,
) -> None:
    daemon = daemon_on()
    client = on_private_engine.client()
    run_id = daemon.submit(code, timeout_s=60)
    seen: list[str] = []

    def in_step() -> bool:
        container = container_of(client, run_id)
        if container is None:
            return False
        listing = processes(client, container["Id"])
        seen.append(listing)
        started = began in "".join(seen)
        return started and marker in listing and (absent is None or absent not in listing)

    poll(in_step, timeout_s=30, what=f"the step ({marker} without {absent})")
    kill_restart_and_check(daemon, on_private_engine, [run_id])
    client.close()


def test_kill_9_while_installing(
    daemon_on: Callable[..., Daemon], on_private_engine: PrivateEngine
) -> None:
    # The private engine has no network, so pip retries (and waits) for a while.
    daemon = daemon_on(install_mode="per_run", installer="pip", install_network="none")
    client = on_private_engine.client()
    run_id = daemon.submit("import six", requirements=["six"])

    def installing() -> bool:
        container = container_of(client, run_id)
        return container is not None and "pip" in processes(client, container["Id"])

    poll(installing, timeout_s=30, what="pip in the sandbox")
    kill_restart_and_check(daemon, on_private_engine, [run_id])
    client.close()
