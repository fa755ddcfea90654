"""The run right after a cold install against a compiled cache hit, and why it is slower.

    python -m bench.second_run     # BENCH_SECOND_N rounds (3); JSON on stdout, a line per round

A reference set (pandas plus a marker that is never true: its own key, the same
packages) is installed and compiled once; its runs are the compiled cache hits.
Each round installs a new set the same way (a new marker: a new key, nothing
adopted from the shared volume; uv's download cache makes the install quick) and
times, each between two hits of the reference (the ratio's base, so load from
other work falls on both alike):

* ``first``: the run that installs the set (with the compile of what it imported);
* ``second``: the run right after it, while the rest of the set compiles;
* ``no_bytecode``: a reference run whose imports ignore the bytecode
  (``sys.pycache_prefix``): what missing bytecode alone costs;
* ``held``: on another new set, the run right after the first while the cache's
  background compile is held back (queued behind a blocker on its compile
  thread) until that run ends: what the run costs without a compile beside it.

The compile's log lines (how many files first, how long) and the load average are
recorded too. Rounds of two trees can be alternated to compare them.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from loguru import logger

from ai_data_agent import Executor, RunRequest, Settings
from tests.support.settings import ca_bundle

PANDAS_CODE = "import pandas as pd; print(pd.DataFrame({'a':[1,2]}).sum())"
# Bytecode looked for where there is none: each import compiles its source again.
IGNORE_BYTECODE = "import sys; sys.pycache_prefix = '/dev/null/none'\n"
REFERENCE = ["pandas", "sqlparse ; python_version < '2.0.second-run-reference'"]


def log(message: str) -> None:
    print(f"[second-run] {message}", file=sys.stderr, flush=True)


def new_set() -> list[str]:
    return ["pandas", f"sqlparse ; python_version < '2.0.{time.time_ns()}'"]


def timed(
    executor: Executor,
    requirements: list[str],
    before: str = "",
    parts: dict[str, float] | None = None,
) -> float:
    """Seconds of one pandas run; its install and execute times go to ``parts``."""
    started = time.perf_counter()
    result = executor.run(RunRequest(code=before + PANDAS_CODE, requirements=requirements))
    elapsed = time.perf_counter() - started
    if result.status != "succeeded":
        raise RuntimeError(f"pandas run {result.status}: {result.error} {result.stderr[-300:]!r}")
    if parts is not None:
        parts.update(install=result.timings.install_s, execute=result.timings.execute_s)
    return elapsed


def wait_compiled(executor: Executor, requirements: list[str], timeout_s: float = 300.0) -> None:
    """Until the index says the set's bytecode is all compiled."""
    cache = executor.env_cache
    assert cache is not None
    key = cache.key_for(requirements, executor.backend.resolve_image(), "second-run")
    deadline = time.monotonic() + timeout_s
    while not ((env := cache.index.get(key, touch=False)) and env.compiled):
        if time.monotonic() > deadline:
            raise RuntimeError("the compile did not end")
        time.sleep(0.1)


def between_hits(executor: Executor, measured: Callable[[], float]) -> tuple[float, float]:
    """``measured()`` and the mean of a reference hit before and after it."""
    before = timed(executor, REFERENCE)
    value = measured()
    return value, (before + timed(executor, REFERENCE)) / 2


def held(executor: Executor) -> float:
    """The second run of a new set while the background compile waits behind a blocker."""
    cache = executor.env_cache
    assert cache is not None
    requirements = new_set()
    if cache._background is None:
        cache._background = ThreadPoolExecutor(1, thread_name_prefix="compile")
    release = threading.Event()
    cache._background.submit(release.wait)
    try:
        timed(executor, requirements)
        return timed(executor, requirements)
    finally:
        release.set()
        wait_compiled(executor, requirements)


def one_round(executor: Executor, lines: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"load": round(os.getloadavg()[0], 1)}
    requirements = new_set()
    lines.clear()
    seconds: dict[str, float] = {}
    base = timed(executor, REFERENCE)
    first: dict[str, float] = {}
    seconds["first"] = timed(executor, requirements, parts=first)
    out["first_parts"] = first
    seconds["second"] = timed(executor, requirements)
    hits = [base, timed(executor, REFERENCE)]
    out["compile_log"] = [m for m in lines if "compiled in" in m]
    wait_compiled(executor, requirements)
    seconds["no_bytecode"], hit = between_hits(
        executor, lambda: timed(executor, REFERENCE, IGNORE_BYTECODE)
    )
    hits.append(hit)
    seconds["held"], hit = between_hits(executor, lambda: held(executor))
    hits.append(hit)
    out["hit_s"] = round(statistics.mean(hits), 3)
    out["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    out["ratios"] = {k: round(v / out["hit_s"], 2) for k, v in seconds.items() if k != "first"}
    return out


def main() -> int:
    rounds = int(os.environ.get("BENCH_SECOND_N", "3"))
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m.record["message"])), level="INFO")
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="ai-data-agent-second-run-") as tmp,
        Executor(
            Settings(
                ca_bundle=ca_bundle(),
                pool_size=int(os.environ.get("BENCH_SECOND_POOL", "0")),
                env_cache_index=Path(tmp) / "envcache.sqlite3",
            )
        ) as executor,
    ):
        timed(executor, REFERENCE)  # installed or adopted, then compiled once
        wait_compiled(executor, REFERENCE)
        timed(executor, REFERENCE)
        for i in range(rounds):
            found = one_round(executor, lines)
            log(f"round {i + 1}/{rounds}: {json.dumps(found)}")
            results.append(found)
    logger.remove(sink)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
