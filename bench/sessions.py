"""The sessions section of `make bench`: start, cell round trip, and an analysis in 10 steps.

    results = SessionBench(settings_for, image, ca_bundle, tmp, n).run()

* session start: ``executor.session()`` with a fresh container and with a warm
  pool, and ``client.session()`` through the daemon with a warm pool (p50, p95);
* cell round trip of ``1 + 1``: in the library, and through HTTP (the client's
  ``run``, one request per cell);
* a 10-step analysis of samples/data/sales.csv with pandas: one session (start,
  upload, load once, then 9 cells) against the same 10 steps as one-shot runs
  (each uploads the file and loads it again), wall time and their ratio.

Everything runs in this process against the engine, and against a daemon
subprocess for HTTP (`tests.support.daemon`), in the same run as the floor.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ai_data_agent.client import Client
from ai_data_agent.executor import Executor
from ai_data_agent.models import InputFile, RunRequest
from ai_data_agent.session_models import CellStatus
from ai_data_agent.settings import Settings
from tests.support.daemon import Daemon

REPO = Path(__file__).resolve().parent.parent
SALES = (REPO / "samples" / "data" / "sales.csv").read_bytes()
LOAD = "import pandas as pd\ndf = pd.read_csv('data/sales.csv')\n"
STEPS = [
    "len(df)",
    "df.describe()",
    "df.groupby('region').units.sum()",
    "df.groupby('product').units.mean()",
    "(df.units * df.unit_price).sum()",
    "df.sort_values('units').tail(3)",
    "df.pivot_table(index='region', columns='product', values='units', aggfunc='sum')",
    "df['date'].min(), df['date'].max()",
    "df[df.units > 20].shape",
]


def p50_p95(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 4),
        "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 4),
    }


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def wait_pool(executor: Executor, size: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while executor.pool is not None and executor.pool.idle_count() < size:
        if time.monotonic() > deadline:
            raise RuntimeError("the warm pool did not fill")
        time.sleep(0.02)


class SessionBench:
    def __init__(
        self, settings_for: Callable[..., Settings], tmp: Path, n: int, pool_size: int
    ) -> None:
        self.settings_for = settings_for
        self.tmp = tmp
        self.n = n
        self.pool_size = pool_size

    def start_times(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, pool in (("library_fresh", 0), ("library_pool", self.pool_size)):
            with Executor(self.settings_for(pool_size=pool)) as executor:
                executor.start_pool()
                seconds = []
                for _ in range(self.n + 1):
                    wait_pool(executor, pool)
                    spent, session = timed(executor.session)
                    session.close()
                    seconds.append(spent)
                out[name] = p50_p95(seconds[1:])
        return out

    def cell_times(self, client: Client) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with Executor(self.settings_for()) as executor, executor.session() as session:
            session.run("1 + 1")
            out["library"] = p50_p95([timed(lambda: session.run("1 + 1"))[0] for _ in range(50)])
        with client.session() as remote:
            remote.run("1 + 1")
            out["http"] = p50_p95([timed(lambda: remote.run("1 + 1"))[0] for _ in range(50)])
        return out

    def analysis(self) -> dict[str, Any]:
        """The same 10 steps, in one session and as 10 one-shot runs (pandas a cache hit)."""
        files = [InputFile.from_bytes("data/sales.csv", SALES)]
        with Executor(self.settings_for()) as executor:
            warm = executor.run(RunRequest(code=LOAD, requirements=["pandas"], files=files))
            if warm.status != "succeeded":
                return {"error": f"pandas did not run: {warm.error}"}

            def in_session() -> list[str]:
                with executor.session(requirements=["pandas"]) as session:
                    session.upload("data/sales.csv", SALES)
                    cells = [session.run(LOAD), *(session.run(step) for step in STEPS)]
                return [c.status.value for c in cells]

            def as_runs() -> list[str]:
                runs = [
                    executor.run(
                        RunRequest(
                            code=LOAD + f"print({step})", requirements=["pandas"], files=files
                        )
                    )
                    for step in ["len(df)", *STEPS]
                ]
                return [r.status.value for r in runs]

            session_s, statuses = timed(in_session)
            runs_s, run_statuses = timed(as_runs)
        ok = all(s == CellStatus.SUCCEEDED.value for s in statuses) and all(
            s == "succeeded" for s in run_statuses
        )
        return {
            "session_s": round(session_s, 3),
            "one_shot_runs_s": round(runs_s, 3),
            "ratio": round(session_s / runs_s, 3),
            "all_succeeded": ok,
        }

    def run(self, settings: dict[str, Any]) -> dict[str, Any]:
        results: dict[str, Any] = {"start": self.start_times()}
        daemon = Daemon.start(
            self.tmp / "sessions-daemon", {**settings, "pool_size": self.pool_size}
        )
        try:
            with Client(daemon.url, daemon.token, timeout=120) as client:
                seconds = []
                for _ in range(self.n + 1):
                    time.sleep(0.5)  # the pool refills between sessions, as between requests
                    spent, session = timed(client.session)
                    session.close()
                    seconds.append(spent)
                results["start"]["http_pool"] = p50_p95(seconds[1:])
                results["cell"] = self.cell_times(client)
        finally:
            daemon.stop()
        results["analysis"] = self.analysis()
        return results
