"""Soak: mixed benign and hostile runs through the daemon, with random ``kill -9``s.

Zero leaked containers, and every accepted run in exactly one terminal state.
Ten minutes by default (``make soak``); ``BATTERY_SOAK_SECONDS`` shortens it.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.daemon import TERMINAL, Daemon
from tests.support.engines import PrivateEngine

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(int(os.environ.get("BATTERY_SOAK_SECONDS", "600")) + 300),
    pytest.mark.filterwarnings(r"ignore:unclosed <socket\.socket:ResourceWarning"),
]

MIX = [
    ("print('benign')", {}),
    ("import time; time.sleep(1); print('slow benign')", {}),
    ("while True: pass", {"timeout_s": 2}),
    ("import os\nwhile True:\n    try: os.fork()\n    except OSError: pass", {"timeout_s": 2}),
    ("x = [b'x' * (16 << 20) for _ in range(64)]", {"memory_mb": 128}),
    ("import sys\nsys.stdout.write('y' * (8 << 20))", {}),
    ("raise SystemExit(3)", {}),
]


def test_soak(
    on_private_engine: PrivateEngine, start_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    seconds = float(os.environ.get("BATTERY_SOAK_SECONDS", "600"))
    rng = random.Random(int(os.environ.get("BATTERY_SOAK_SEED", "6")))
    env = {"DOCKER_HOST": on_private_engine.url}
    daemon = start_daemon(
        tmp_path / "data", extra_env=env, max_concurrent_runs=2, max_queued_runs=8
    )
    accepted: list[str] = []
    kills = 0
    end = time.monotonic() + seconds
    next_kill = time.monotonic() + rng.uniform(5, 20)
    try:
        while time.monotonic() < end:
            code, limits = rng.choice(MIX)
            try:
                with daemon.client(timeout=10) as client:
                    response = client.post("/v1/runs", json={"code": code, "wait": False, **limits})
                if response.status_code == 202:
                    accepted.append(response.json()["id"])
                else:
                    assert response.status_code in (429, 503), response.text
            except httpx.TransportError:
                pass  # the daemon is being restarted
            if time.monotonic() > next_kill:
                daemon.kill()
                kills += 1
                daemon = daemon.restart()
                next_kill = time.monotonic() + rng.uniform(5, 20)
            time.sleep(rng.uniform(0.05, 0.5))
        statuses = {run_id: daemon.wait_terminal(run_id, 180)["status"] for run_id in accepted}
        deadline = time.monotonic() + 60
        while on_private_engine.sandboxes():
            assert time.monotonic() < deadline, on_private_engine.sandboxes()
            time.sleep(0.5)
    finally:
        daemon.stop()

    assert kills >= 1 and len(accepted) > 10, (kills, len(accepted))
    assert set(statuses.values()) <= TERMINAL, statuses
    print(
        f"soak: {len(accepted)} runs, {kills} kills, statuses "
        f"{sorted((s, list(statuses.values()).count(s)) for s in set(statuses.values()))}"
    )
