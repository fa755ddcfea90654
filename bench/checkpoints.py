"""The checkpoints section of `make bench`: checkpoint, resume, and a cell with per-cell checkpoints.

    results = CheckpointBench(tmp, n, pool_size).run(settings)

Through a daemon subprocess and the client (`tests.support.daemon`), in the same run as the floor:

* a session with a few small variables: ``checkpoint`` and ``resume`` (a paused
  session, its container from the warm pool), p50 and p95;
* a session holding a 100 MB pandas DataFrame (pandas a cache hit): its
  checkpoint, and its resume up to the first cell's answer, beside a fresh
  session's start with the same requirements (the image start the target allows);
* the ``1 + 1`` round trip over HTTP with ``checkpoint_after_each_cell`` on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ai_data_agent.client import Client
from bench.sessions import p50_p95, timed
from tests.support.daemon import Daemon

SMALL = "a = 1\nb = [1, 2, 3]\nc = {'x': 'y'}\ndef f(): return a + len(b)\n"
BIG = (
    "import numpy as np, pandas as pd\n"
    "df = pd.DataFrame(np.random.default_rng(0).random((1_310_720, 10)))\n"  # 100 MiB of floats
    "int(df.memory_usage().sum())"
)
REFILL_S = 0.5  # the pool refills between sessions, as between requests


class CheckpointBench:
    def __init__(self, tmp: Path, n: int, pool_size: int) -> None:
        self.tmp = tmp
        self.n = max(n, 3)
        self.pool_size = max(pool_size, 1)

    def small(self, client: Client) -> dict[str, Any]:
        checkpoint, resume = [], []
        with client.session() as s:
            s.run(SMALL)
            s.checkpoint()  # the first loads the serialiser in the kernel
            for _ in range(self.n):
                checkpoint.append(timed(s.checkpoint)[0])
            for _ in range(self.n):
                s.pause()
                time.sleep(REFILL_S)
                spent, report = timed(s.resume)
                assert report.state == "restored", report
                resume.append(spent)
        return {"checkpoint": p50_p95(checkpoint), "resume": p50_p95(resume)}

    def dataframe(self, client: Client) -> dict[str, Any]:
        with client.session(requirements=["pandas"]) as s:
            s.run("import pandas")
        time.sleep(REFILL_S)
        start_s, s = timed(lambda: client.session(requirements=["pandas"]))
        with s:
            size = int(s.run(BIG).result.data["text/plain"])
            checkpoint_s, info = timed(s.checkpoint)
            s.pause()
            time.sleep(REFILL_S)
            resume_s, cell = timed(lambda: s.run("df.shape"))
            assert cell.state == "restored", cell
        return {
            "dataframe_bytes": size,
            "checkpoint_bytes": info.bytes,
            "checkpoint_s": round(checkpoint_s, 3),
            "session_start_s": round(start_s, 3),
            "resume_first_cell_s": round(resume_s, 3),
            "resume_beyond_start_s": round(resume_s - start_s, 3),
        }

    def cell_with_checkpoints(self, settings: dict[str, Any]) -> dict[str, Any]:
        values = {**settings, "checkpoint_after_each_cell": True}
        daemon = Daemon.start(self.tmp / "checkpoints-each-cell", values)
        try:
            with Client(daemon.url, daemon.token, timeout=120) as client, client.session() as s:
                s.run("1 + 1")
                return p50_p95([timed(lambda: s.run("1 + 1"))[0] for _ in range(50)])
        finally:
            daemon.stop()

    def run(self, settings: dict[str, Any]) -> dict[str, Any]:
        values = {**settings, "pool_size": self.pool_size, "install_mode": "cache"}
        daemon = Daemon.start(self.tmp / "checkpoints-daemon", values)
        results: dict[str, Any] = {}
        try:
            with Client(daemon.url, daemon.token, timeout=300) as client:
                results["small"] = self.small(client)
                results["dataframe"] = self.dataframe(client)
        finally:
            daemon.stop()
        results["cell_each"] = self.cell_with_checkpoints(settings)
        return results


def targets(results: dict[str, Any]) -> list[tuple[str, float | None, float]]:
    """(target, value, most) of the section, as the report's targets."""
    small = results.get("small") or {}
    frame = results.get("dataframe") or {}
    return [
        (
            "checkpoint, a few small variables, p50 <= 0.2 s",
            (small.get("checkpoint") or {}).get("p50"),
            0.2,
        ),
        (
            "resume, a few small variables, from the pool, p50 <= 0.5 s",
            (small.get("resume") or {}).get("p50"),
            0.5,
        ),
        ("checkpoint of a 100 MB DataFrame <= 2 s", frame.get("checkpoint_s"), 2.0),
        (
            "resume of it, first cell answered, beyond a session start <= 2 s",
            frame.get("resume_beyond_start_s"),
            2.0,
        ),
        (
            "cell round trip (1 + 1), HTTP, a checkpoint after each cell, p50 <= 0.020 s",
            (results.get("cell_each") or {}).get("p50"),
            0.020,
        ),
    ]


def render(results: dict[str, Any] | None) -> list[str]:
    if not results:
        return []
    row = "{:<64} {:>10} {:>10} {:>5}"
    lines = ["", row.format("checkpoints (s)", "p50", "p95", "n")]
    small = results.get("small") or {}
    for key in ("checkpoint", "resume"):
        entry = small.get(key) or {}
        label = f"{key}, a few small variables" + (" (warm pool)" if key == "resume" else "")
        lines.append(row.format(label, entry.get("p50"), entry.get("p95"), entry.get("n")))
    each = results.get("cell_each") or {}
    lines.append(
        row.format(
            "cell round trip (1 + 1), HTTP, checkpoint after each cell",
            each.get("p50"),
            each.get("p95"),
            each.get("n"),
        )
    )
    frame = results.get("dataframe") or {}
    if frame:
        lines.append(
            f"100 MB DataFrame ({frame['dataframe_bytes']} bytes, checkpoint "
            f"{frame['checkpoint_bytes']} bytes): checkpoint {frame['checkpoint_s']} s; resume "
            f"to the first cell {frame['resume_first_cell_s']} s, a session start "
            f"{frame['session_start_s']} s, beyond it {frame['resume_beyond_start_s']} s"
        )
    return lines
