"""Docker restarts while runs are in flight: clear errors, the controller keeps
serving, recovers when Docker is back, and nothing leaks.

Marked slow; it restarts the private engine of `conftest` (never the machine's).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ai_data_agent import Executor, ExecutorError, RunRequest, RunResult
from tests.support.daemon import Daemon
from tests.support.engines import PrivateEngine
from tests.support.settings import build_settings, ca_bundle

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.filterwarnings(r"ignore:unclosed <socket\.socket:ResourceWarning"),
]

SLEEPER = "import time; print('started', flush=True); time.sleep(60)"


def take_leftovers(engine: PrivateEngine, within_s: float = 60.0) -> list[str]:
    """The managed containers still there after ``within_s`` (removals that failed
    while the engine was down are retried), removed so later tests start clean."""

    deadline = time.monotonic() + within_s
    while engine.sandboxes() and time.monotonic() < deadline:
        time.sleep(0.5)
    return engine.remove_sandboxes()


def test_library_runs_in_flight_end_clearly_and_the_executor_recovers(
    on_private_engine: PrivateEngine, tmp_path: Path
) -> None:
    settings = build_settings(
        {
            "docker_host": on_private_engine.url,
            "pull_missing_image": False,
            "data_dir": tmp_path,
            "ca_bundle": ca_bundle(),
            "sandbox_image": on_private_engine.image,
        }
    )
    with Executor(settings) as executor:
        outcomes: list[RunResult | BaseException] = []
        started = threading.Semaphore(0)

        def run() -> None:
            try:
                outcomes.append(
                    executor.run(
                        RunRequest(code=SLEEPER, timeout_s=60),
                        on_event=lambda e: started.release() if e.kind == "stdout" else None,
                    )
                )
            except BaseException as exc:  # what the caller sees is the point of the test
                outcomes.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for _ in threads:
            assert started.acquire(timeout=60), "the runs did not start"

        on_private_engine.restart()
        for thread in threads:
            thread.join(90)

        assert len(outcomes) == 2, outcomes
        for outcome in outcomes:
            if isinstance(outcome, RunResult):
                assert outcome.status in {"error", "interrupted"}, outcome
            else:
                assert isinstance(outcome, ExecutorError), repr(outcome)
        after = executor.run(RunRequest(code="print('back')"))
        assert after.status == "succeeded" and after.stdout == "back\n"
        assert take_leftovers(on_private_engine) == []


def test_daemon_keeps_serving_through_a_docker_restart(
    on_private_engine: PrivateEngine, start_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    daemon = start_daemon(
        tmp_path / "data",
        extra_env={"DOCKER_HOST": on_private_engine.url},
        sandbox_image=on_private_engine.image,
    )
    try:
        with daemon.client() as client:
            ids = [
                client.post("/v1/runs", json={"code": SLEEPER, "wait": False}).json()["id"]
                for _ in range(2)
            ]
            deadline = time.monotonic() + 60
            while len(on_private_engine.sandboxes()) < 2:
                assert time.monotonic() < deadline
                time.sleep(0.2)

            on_private_engine.stop()
            during: dict[str, Any] = {
                "healthz": httpx.get(f"{daemon.url}/healthz", timeout=10).status_code,
                "submit": client.post("/v1/runs", json={"code": "print(1)"}, timeout=60),
            }
            on_private_engine.start()

            records = [daemon.wait_terminal(run_id, 120) for run_id in ids]
            deadline = time.monotonic() + 60
            while True:
                after = client.post("/v1/runs", json={"code": "print('back')"})
                if after.status_code == 200 and after.json().get("status") == "succeeded":
                    break
                assert time.monotonic() < deadline, after.text
                time.sleep(1)
    finally:
        daemon.stop()

    assert during["healthz"] == 200
    submit = during["submit"]
    # A clear answer: refused (503) or accepted and ended as an error.
    assert submit.status_code in (200, 503), submit.text
    if submit.status_code == 200:
        assert submit.json()["status"] == "error", submit.text
    assert [r["status"] for r in records] == [records[0]["status"]] * 2
    assert records[0]["status"] in {"error", "interrupted"}, records
    assert after.json()["stdout"] == "back\n"
    assert take_leftovers(on_private_engine) == []
