"""Latency of a hello-world run through the daemon's HTTP API next to `Executor.run` (slow).

    .venv/bin/pytest tests/integration/service/test_daemon_latency.py -m slow -s

Both paths run the same request with the same settings on the same engine,
alternating, after one warm-up each; the medians of ``ROUNDS`` runs are printed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_data_agent import Executor, RunRequest
from tests.support.daemon import Daemon

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROUNDS = 10
HELLO = "print('hello, world')"


def test_median_latency_http_vs_library(
    start_daemon: Callable[..., Daemon], executor: Executor, tmp_path: Path
) -> None:
    client = start_daemon(tmp_path / "data").client()
    library: list[float] = []
    http: list[float] = []
    # Wall time minus the run's own total_s (container start to result): what each
    # path adds around the sandbox, much less noisy than the totals.
    library_extra: list[float] = []
    http_extra: list[float] = []
    for round_number in range(ROUNDS + 1):
        began = time.perf_counter()
        result = executor.run(RunRequest(code=HELLO))
        library_s = time.perf_counter() - began
        assert result.status == "succeeded", result

        began = time.perf_counter()
        response = client.post("/v1/runs", json={"code": HELLO})
        http_s = time.perf_counter() - began
        assert response.status_code == 200 and response.json()["status"] == "succeeded"

        if round_number:  # the first round warms up both paths
            library.append(library_s)
            http.append(http_s)
            library_extra.append(library_s - result.timings.total_s)
            http_extra.append(http_s - response.json()["timings"]["total_s"])
    lib_median, http_median = statistics.median(library), statistics.median(http)
    print(
        f"\nhello-world median over {ROUNDS} runs: Executor.run {lib_median * 1000:.0f} ms, "
        f"HTTP POST wait=true {http_median * 1000:.0f} ms "
        f"({(http_median - lib_median) * 1000:+.0f} ms); outside the run's total_s: "
        f"{statistics.median(library_extra) * 1000:.1f} ms vs "
        f"{statistics.median(http_extra) * 1000:.1f} ms"
    )
    assert http_median < lib_median + 1.0  # the daemon adds milliseconds, not seconds
