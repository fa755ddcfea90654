"""Item 12: the HTTP API of the real daemon, and hostile runs through it.

Missing or wrong tokens get 401; over-large bodies 413; absurd limits 400;
a burst of five times the capacity never runs more containers than the cap,
the excess gets 429 at once, and every accepted run finishes. Hostile runs
through the API end as they do through the library, and the daemon's token
(its own secret) never reaches a sandbox or a record.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from ai_data_agent.executor.spec import LABEL_MANAGED, LABEL_RUN_ID
from tests.support.daemon import Daemon
from tests.support.wait import poll

pytestmark = pytest.mark.integration

CONCURRENCY = 2
QUEUE = 2
CAPACITY = CONCURRENCY + QUEUE


@pytest.fixture(scope="module")
def daemon(
    battery_kwargs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Daemon]:
    limits = {"max_concurrent_runs": CONCURRENCY, "max_queued_runs": QUEUE}
    values = {**battery_kwargs, **limits, "max_body_bytes": 64 * 1024}
    daemon = Daemon.start(tmp_path_factory.mktemp("api-daemon"), values)
    yield daemon
    daemon.stop()


def daemon_containers(docker_client: docker.DockerClient, run_ids: set[str]) -> list[str]:
    return [
        c["Id"]
        for c in docker_client.api.containers(all=True, filters={"label": LABEL_MANAGED})
        if (c.get("Labels") or {}).get(LABEL_RUN_ID) in run_ids
    ]


def assert_daemon_unchanged(
    daemon: Daemon, docker_client: docker.DockerClient, run_ids: set[str]
) -> None:
    """Nothing of these runs is left, and the daemon still serves a benign run."""
    poll(
        lambda: not daemon_containers(docker_client, run_ids),
        timeout_s=15,
        what="the runs' containers removed",
        diagnostics=lambda: daemon_containers(docker_client, run_ids),
    )
    with daemon.client() as client:
        response = client.post("/v1/runs", json={"code": "print('still fine')"})
    assert response.status_code == 200, response.text
    assert response.json()["stdout"] == "still fine\n"  # wait=true answers the RunResult


def test_missing_or_wrong_token_is_401(daemon: Daemon, docker_client: docker.DockerClient) -> None:
    before = set(daemon_containers(docker_client, set()))
    for token in ("", "wrong", daemon.token + "x"):
        with daemon.client(token=token) as client:
            response = client.post("/v1/runs", json={"code": "print(1)"})
            listing = client.get("/v1/runs")
        assert response.status_code == 401, (token, response.text)
        assert listing.status_code == 401
        assert daemon.token not in response.text
    assert set(daemon_containers(docker_client, set())) == before
    assert_daemon_unchanged(daemon, docker_client, set())


def test_an_over_large_body_is_413(daemon: Daemon, docker_client: docker.DockerClient) -> None:
    body = json.dumps({"code": "#" + "x" * (1024 * 1024)})
    with daemon.client() as client:
        response = client.post(
            "/v1/runs", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413, response.text
    assert_daemon_unchanged(daemon, docker_client, set())


@pytest.mark.parametrize(
    "body",
    [
        {"timeout_s": 1e9},
        {"memory_mb": 10**9},
        {"cpus": 1e6},
        {"requirements": ["-i http://x"]},
        {"files": [{"path": "../x", "content_b64": ""}]},
        {"env": {"LD_PRELOAD": "/tmp/x.so"}},
    ],
    ids=["timeout", "memory", "cpus", "requirements", "path", "env"],
)
def test_absurd_or_hostile_requests_are_400_before_any_container(
    daemon: Daemon, docker_client: docker.DockerClient, body: dict[str, object]
) -> None:
    with daemon.client() as client:
        response = client.post("/v1/runs", json={"code": "print(1)", **body})
        listing = client.get("/v1/runs", params={"limit": 100}).json()
    assert response.status_code in (400, 413, 422), response.text
    assert response.json()["error"]["code"], response.text
    # Nothing was recorded, so nothing ran.
    assert all(
        item["request"]["code"] != "print(1)" or item["status"] == "succeeded"
        for item in listing["items"]
    ), listing


def test_a_burst_of_five_times_capacity_is_bounded(
    daemon: Daemon, docker_client: docker.DockerClient
) -> None:
    code = "import time; time.sleep(1); print('done')"
    peak = [0]
    stop = threading.Event()
    accepted: set[str] = set()

    def watch() -> None:
        while not stop.is_set():
            running = docker_client.api.containers(
                filters={"label": LABEL_MANAGED, "status": "running"}
            )
            ours = [c for c in running if (c.get("Labels") or {}).get(LABEL_RUN_ID) in accepted]
            peak[0] = max(peak[0], len(ours))
            time.sleep(0.05)

    def submit(_: int) -> tuple[int, float, str]:
        with daemon.client() as client:
            started = time.monotonic()
            response = client.post("/v1/runs", json={"code": code, "wait": False})
            elapsed = time.monotonic() - started
        run_id = response.json().get("id", "") if response.status_code == 202 else ""
        if run_id:
            accepted.add(run_id)
        return response.status_code, elapsed, run_id

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=5 * CAPACITY) as pool:
            answers = list(pool.map(submit, range(5 * CAPACITY)))
        records = [daemon.wait_terminal(run_id, 120) for _, _, run_id in answers if run_id]
    finally:
        stop.set()
        watcher.join(5)

    codes = [code for code, _, _ in answers]
    assert set(codes) <= {202, 429}, codes
    assert CONCURRENCY <= codes.count(202) <= CAPACITY + CONCURRENCY, codes
    assert codes.count(429) >= 5 * CAPACITY - CAPACITY - CONCURRENCY
    assert max(e for c, e, _ in answers if c == 429) < 2.0  # refused at once
    assert peak[0] <= CONCURRENCY, f"{peak[0]} containers ran at once, cap {CONCURRENCY}"
    assert [r["status"] for r in records] == ["succeeded"] * len(records), records
    assert_daemon_unchanged(daemon, docker_client, accepted)


def test_hostile_runs_through_the_api_end_as_in_the_library(
    daemon: Daemon, docker_client: docker.DockerClient
) -> None:
    hunt = (
        "import os\n"
        "blob = b''.join(open(f'/proc/{p}/environ', 'rb').read() for p in os.listdir('/proc')"
        " if p.isdigit() and os.access(f'/proc/{p}/environ', os.R_OK))\n"
        "print(sorted(os.environ))\n"
        "print(os.environ.get('AI_DATA_AGENT_API_TOKENS'), len(blob))\n"
        "while True: pass\n"
    )
    with daemon.client() as client:
        response = client.post("/v1/runs", json={"code": hunt, "timeout_s": 2})
    assert response.status_code == 200, response.text
    record_text = response.text
    result = response.json()
    assert result["status"] == "timed_out", result
    assert "None" in result["stdout"]
    assert daemon.token not in record_text and daemon.token not in json.dumps(
        daemon.record(result["id"])
    )
    assert_daemon_unchanged(daemon, docker_client, {result["id"]})


def test_benign_twin_a_run_through_the_api_succeeds(daemon: Daemon, tmp_path: Path) -> None:
    with daemon.client() as client:
        response = client.post("/v1/runs", json={"code": "print(6 * 7)"})
    assert response.status_code == 200, response.text
    assert response.json()["stdout"] == "42\n"
    assert httpx.get(f"{daemon.url}/healthz").status_code == 200
