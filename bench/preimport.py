"""The pre-import section of `make bench`: a pandas run and a pandas session from a warm pool
whose sandboxes imported pandas before the code came, against plain cache hits.

    results = PreimportBench(tmp, settings, n).run()
    lines = render(results); found = targets(results)

Three daemons (`tests.support.daemon`), pandas a cache hit in each, sampled in turn:

* ``preimported``: ``prewarm [["pandas"]]`` with a warm pool: a run of the set takes a
  pooled sandbox whose code interpreter imported pandas already;
* ``plain_pool``: a warm pool without that profile: a pooled sandbox, the
  environment mounted, pandas imported by the code;
* ``fresh``: no pool: a fresh container per run (the cache hit as it was).

Each sample waits until its daemon's pool is full again (``/metrics``), as a
server between requests. The run is ``import pandas; df.sum()`` over HTTP;
the session is a start plus a first cell that makes a DataFrame, answered.
Ratios are to the plain cache hits of the same run.
"""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from ai_data_agent.client import Client
from bench.sessions import p50_p95, timed
from tests.support.daemon import Daemon

CODE = "import pandas as pd\nprint(pd.DataFrame({'a': [1, 2]}).sum())"
CELL = "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2]})\nint(df.a.sum())"
REQUIREMENTS = ["pandas"]
POOLED = {"pool_size": 1, "pool_recent_sets": 0}
DAEMONS: dict[str, dict[str, Any]] = {
    "preimported": {**POOLED, "prewarm": '[["pandas"]]'},
    "plain_pool": POOLED,
    "fresh": {"pool_size": 0},
}
POOL_LINE = re.compile(r'^ai_data_agent_pool_(idle|target)\{[^}]*profile="([^"]+)"\} (\S+)$', re.M)


def pool_full(http: httpx.Client) -> bool:
    """Every profile of the daemon's pool holds what it aims for (no pool: True)."""
    text = http.get("/metrics").text
    found: dict[str, dict[str, float]] = {}
    for kind, profile, value in POOL_LINE.findall(text):
        found.setdefault(profile, {})[kind] = float(value)
    return all(p.get("idle", 0) >= p.get("target", 0) for p in found.values())


def wait_full(http: httpx.Client, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pool_full(http):
        if time.monotonic() > deadline:
            raise RuntimeError("the warm pool did not fill")
        time.sleep(0.05)


class PreimportBench:
    def __init__(self, tmp: Path, settings: dict[str, Any], n: int) -> None:
        self.tmp = tmp
        self.settings = settings
        self.n = max(n, 3)

    def run(self) -> dict[str, Any]:
        daemons: dict[str, Daemon] = {}
        clients: dict[str, Client] = {}
        try:
            for name, values in DAEMONS.items():
                daemons[name] = Daemon.start(self.tmp / name, {**self.settings, **values})
                clients[name] = Client(daemons[name].url, daemons[name].token, timeout=300)
            return self._measure({n: d.client() for n, d in daemons.items()}, clients)
        finally:
            for client in clients.values():
                client.close()
            for daemon in daemons.values():
                daemon.stop()

    def _measure(self, http: dict[str, httpx.Client], clients: dict[str, Client]) -> dict[str, Any]:
        for client in clients.values():  # installs or adopts pandas; makes the profile
            result = client.run(CODE, requirements=REQUIREMENTS)
            if result.status.value != "succeeded":
                raise RuntimeError(f"pandas did not run: {result.error}")
        runs: dict[str, list[float]] = {name: [] for name in clients}
        hits: list[bool] = []
        for _ in range(self.n + 1):  # the first round warms up
            for name, client in clients.items():
                wait_full(http[name])
                spent, result = timed(lambda c=client: c.run(CODE, requirements=REQUIREMENTS))
                runs[name].append(spent)
                if name == "preimported":
                    hits.append(result.environment.preimported == REQUIREMENTS)
        out: dict[str, Any] = {"run": {name: p50_p95(s[1:]) for name, s in runs.items()}}
        out["run"]["preimported_hits"] = f"{sum(hits[1:])}/{len(hits) - 1}"
        out["session"] = {
            name: p50_p95(self._sessions(http[name], clients[name]))
            for name in ("preimported", "fresh")
        }
        preimported = statistics.median(runs["preimported"][1:])
        for name in ("plain_pool", "fresh"):
            out["run"][f"ratio_to_{name}"] = round(
                preimported / statistics.median(runs[name][1:]), 3
            )
        return out

    def _sessions(self, http: httpx.Client, client: Client) -> list[float]:
        """Session start plus the first DataFrame cell, answered; the first is a warm-up."""
        seconds = []
        for _ in range(self.n + 1):
            wait_full(http)
            started = time.perf_counter()
            with client.session(requirements=REQUIREMENTS) as session:
                cell = session.run(CELL)
                seconds.append(time.perf_counter() - started)
            if cell.status.value != "succeeded":
                raise RuntimeError(f"the DataFrame cell {cell.status.value}: {cell.error}")
        return seconds[1:]


def targets(results: dict[str, Any]) -> list[tuple[str, float | None, float]]:
    """(target, value, most) of the section, as the report's targets."""
    run = results.get("run") or {}
    session = (results.get("session") or {}).get("preimported") or {}
    return [
        (
            "pandas run over HTTP, pre-imported pool, p50 <= 0.15x a plain cache hit (fresh)",
            run.get("ratio_to_fresh"),
            0.15,
        ),
        (
            "session start + first DataFrame cell, pre-imported, p50 <= 0.15 s",
            session.get("p50"),
            0.15,
        ),
    ]


def render(results: dict[str, Any] | None) -> list[str]:
    if not results:
        return []
    row = "{:<64} {:>10} {:>10} {:>5}"
    lines = ["", row.format("pre-imported pandas (s)", "p50", "p95", "n")]
    labels = {
        "preimported": "run over HTTP, pre-imported pool",
        "plain_pool": "run over HTTP, plain pool, cache hit",
        "fresh": "run over HTTP, fresh container, cache hit",
    }
    run = results.get("run") or {}
    for name, label in labels.items():
        entry = run.get(name) or {}
        lines.append(row.format(label, entry.get("p50"), entry.get("p95"), entry.get("n")))
    for name, entry in (results.get("session") or {}).items():
        label = f"session start + first DataFrame cell, {name}"
        lines.append(row.format(label, entry.get("p50"), entry.get("p95"), entry.get("n")))
    lines.append(
        f"pre-imported / plain pool {run.get('ratio_to_plain_pool')}, / fresh "
        f"{run.get('ratio_to_fresh')}; pre-imported sandbox taken {run.get('preimported_hits')}"
    )
    return lines
