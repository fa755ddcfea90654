"""The daemon dying or stopping mid-run: no acknowledged record lost, no sandbox left."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from ai_data_agent.executor.spec import LABEL_CONTROLLER
from tests.integration.engine import controller_containers, run_containers
from tests.support.daemon import Daemon
from tests.support.wait import poll

from .test_daemon_http import SLEEP, submit, wait_for_container

pytestmark = pytest.mark.integration


def test_kill_9_then_restart_records_interrupted_and_removes_the_sandbox(
    start_daemon: Callable[..., Daemon], docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    first = start_daemon(tmp_path / "data")
    run_id = submit(first.client(), SLEEP)
    container = wait_for_container(docker_client, first, run_id)
    dead_controller = container.labels[LABEL_CONTROLLER]

    first.kill()
    assert run_containers(docker_client, run_id), "the orphan should outlive its daemon"

    second = start_daemon(tmp_path / "data")
    record = second.client().get(f"/v1/runs/{run_id}").json()
    assert record["status"] == "interrupted", record
    assert "found at its next start" in record["error"]
    poll(
        lambda: not controller_containers(docker_client, dead_controller),
        timeout_s=60,
        what="the dead daemon's sandboxes to be removed",
        diagnostics=second.log,
    )
    metrics = second.client().get("/metrics").text
    assert "ai_data_agent_containers_reaped_total" in metrics


def test_sigterm_interrupts_runs_after_the_grace_period(
    start_daemon: Callable[..., Daemon], docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    daemon = start_daemon(tmp_path / "data", shutdown_grace_s=1)
    run_id = submit(daemon.client(), SLEEP)
    wait_for_container(docker_client, daemon, run_id)

    daemon.stop(timeout_s=30)

    assert "grace period over; stopping 1 run(s)" in daemon.log()
    assert run_containers(docker_client, run_id) == []
    conn = sqlite3.connect(tmp_path / "data" / "runs.sqlite3")
    try:
        status, error = conn.execute(
            "SELECT status, error FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
    finally:
        conn.close()
    assert status == "interrupted"
    assert "stopped after the grace period" in error
