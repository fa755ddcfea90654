"""The real daemon over HTTP with real sandboxes: runs, auth, back-pressure, cancel."""

from __future__ import annotations

from typing import Any

import docker
import httpx
import pytest

from ai_data_agent.executor.spec import LABEL_CONTROLLER
from tests.integration.engine import run_containers
from tests.support.daemon import TERMINAL, Daemon
from tests.support.wait import poll

pytestmark = pytest.mark.integration

SLEEP = "import time; time.sleep(30)"


def submit(client: httpx.Client, code: str) -> str:
    response = client.post("/v1/runs", params={"wait": "false"}, json={"code": code})
    assert response.status_code == 202, response.text
    run_id: str = response.json()["id"]
    return run_id


def wait_for_container(docker_client: docker.DockerClient, daemon: Daemon, run_id: str) -> Any:
    """The run's sandbox once it is running (so a cancel has a container to kill)."""
    return poll(
        lambda: [c for c in run_containers(docker_client, run_id) if c.status == "running"],
        timeout_s=30,
        what=f"the sandbox of run {run_id}",
        diagnostics=daemon.log,
    )[0]


def test_sync_run_answers_the_result(shared_daemon: Daemon) -> None:
    client = shared_daemon.client()
    response = client.post("/v1/runs", json={"code": "print('hello from the daemon')"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "succeeded", result
    assert result["stdout"] == "hello from the daemon\n"
    record = client.get(f"/v1/runs/{result['id']}").json()
    assert record["status"] == "succeeded" and record["result"]["stdout"] == result["stdout"]


def test_async_run_answers_202_and_is_polled_to_the_end(shared_daemon: Daemon) -> None:
    client = shared_daemon.client()
    response = client.post("/v1/runs", json={"code": "print(6 * 7)", "wait": False})
    assert response.status_code == 202, response.text
    location = response.headers["location"]
    assert location == f"/v1/runs/{response.json()['id']}"
    record = poll(
        lambda: (r := client.get(location).json())["status"] in TERMINAL and r,
        timeout_s=30,
        what="the run to finish",
        diagnostics=shared_daemon.log,
    )
    assert record["status"] == "succeeded", record
    assert record["result"]["stdout"] == "42\n"


def test_missing_or_wrong_token_is_401(shared_daemon: Daemon) -> None:
    for client in (shared_daemon.client(token=""), shared_daemon.client(token="wrong")):
        response = client.post("/v1/runs", json={"code": "print(1)"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert client.get("/healthz").status_code == 200


def test_full_queue_answers_429_at_once(
    shared_daemon: Daemon, docker_client: docker.DockerClient
) -> None:
    client = shared_daemon.client()
    running = submit(client, SLEEP)
    wait_for_container(docker_client, shared_daemon, running)
    queued = submit(client, SLEEP)
    try:
        response = client.post("/v1/runs", json={"code": "print(1)"}, timeout=5)
        assert response.status_code == 429, response.text
        assert response.json()["error"]["code"] == "queue_full"
        assert int(response.headers["retry-after"]) > 0
        assert client.get(f"/v1/runs/{queued}").json()["status"] == "queued"
    finally:
        for run_id in (queued, running):
            client.delete(f"/v1/runs/{run_id}")
    assert client.get(f"/v1/runs/{queued}").json()["status"] == "cancelled"


def test_delete_kills_a_sleeping_run_and_removes_its_container(
    shared_daemon: Daemon, docker_client: docker.DockerClient
) -> None:
    client = shared_daemon.client()
    run_id = submit(client, SLEEP)
    container = wait_for_container(docker_client, shared_daemon, run_id)
    assert container.labels[LABEL_CONTROLLER]

    response = client.delete(f"/v1/runs/{run_id}")
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["status"] == "cancelled"
    assert record["result"]["status"] == "cancelled"
    # Gone when DELETE answers, not eventually.
    assert run_containers(docker_client, run_id) == []
