"""Where the time of one run goes, measured from outside `ai_data_agent` (no src change).

    profiler = PhaseProfiler(executor)              # wraps its backend and pool
    marks = profiler.run(RunRequest(code="..."))     # {"start": 0.0, "ready": 0.031, ...}

The executor's own session objects are wrapped, for the profiled runs only, so
that the moments the controller sends the job, sees each runner phase (from the
``on_event`` callback), sends ``go``, receives the result frame, sees the end
of the stream and removes the container are recorded with `time.perf_counter`.
`PHASES` turns consecutive marks into named spans. Two frames that arrive in
one chunk of the stream get marks a fraction of a millisecond out of order
(the result is marked when the chunk is read, a phase when it is parsed), so a
tiny span can show as -0.x ms.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from ai_data_agent.executor import Executor, RunEvent
from ai_data_agent.models import RunRequest, RunResult

__all__ = ["PHASES", "PhaseProfiler", "summarise"]

# (span name, from mark, to mark): in the order they happen. A span whose marks
# are missing (a fresh container has no "take", a run without requirements no
# "installing") is left out.
PHASES = [
    ("controller: validate, resolve, cache lookup", "start", "container"),
    ("container: take from pool / create+attach+start", "container", "container_ready"),
    ("send job", "container_ready", "job_sent"),
    ("runner: read job, sandbox dir, env -> ready", "job_sent", "ready"),
    ("controller: ready -> go", "ready", "go"),
    ("runner: go -> running (checks, verify)", "go", "running"),
    ("user code: interpreter start + code", "running", "collecting"),
    ("runner: artifacts, cleanup -> result frame", "collecting", "result"),
    ("runner exit -> end of stream", "result", "eof"),
    ("controller: after end of stream", "eof", "remove_start"),
    ("docker rm", "remove_start", "remove_end"),
    ("controller: build the result", "remove_end", "end"),
]


class _TimedSession:
    """A backend session that records when things happen to it."""

    def __init__(self, inner: Any, marks: dict[str, float]) -> None:
        self._inner = inner
        self._marks = marks

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _mark(self, name: str) -> None:
        self._marks.setdefault(name, time.perf_counter())

    def send(self, data: bytes) -> None:
        self._inner.send(data)
        self._mark("go" if data == b"go\n" else "job_sent")

    def read(self, timeout_s: float) -> Any:
        chunk = self._inner.read(timeout_s)
        if chunk is not None:
            if not chunk[1]:
                self._mark("eof")
            elif b'{"k": "result"' in chunk[1]:
                self._mark("result")
        return chunk

    def remove(self) -> None:
        self._mark("remove_start")
        try:
            self._inner.remove()
        finally:
            self._mark("remove_end")


class PhaseProfiler:
    """Records the marks of runs made through `run` on this thread; other runs are untouched."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._local = threading.local()
        backend = executor.backend
        original_start = backend.start

        def start(spec: Any, run_id: str) -> Any:
            marks = getattr(self._local, "marks", None)
            if marks is None:  # the pool's refill thread, or an install container
                return original_start(spec, run_id)
            marks["container"] = time.perf_counter()
            session = original_start(spec, run_id)
            marks["container_ready"] = time.perf_counter()
            return _TimedSession(session, marks)

        backend.start = start  # type: ignore[method-assign]
        pool = executor.pool
        if pool is not None:
            original_take = pool.take

            def take(spec: Any) -> Any:
                marks = getattr(self._local, "marks", None)
                if marks is None:
                    return original_take(spec)
                marks["container"] = time.perf_counter()
                session = original_take(spec)
                if session is None:
                    return None
                marks["container_ready"] = time.perf_counter()
                marks["pooled"] = 1.0
                return _TimedSession(session, marks)

            pool.take = take  # type: ignore[method-assign]

    def run(self, request: RunRequest) -> tuple[dict[str, float], RunResult]:
        """Run ``request``; return marks relative to the start (seconds) and the result."""
        marks: dict[str, float] = {}

        def on_event(event: RunEvent) -> None:
            if event.kind == "phase":
                marks.setdefault(event.data, time.perf_counter())

        self._local.marks = marks
        marks["start"] = time.perf_counter()
        try:
            result = self.executor.run(request, on_event=on_event)
        finally:
            marks["end"] = time.perf_counter()
            self._local.marks = None
        # Profile runs that install nothing (or hit the cache): an install's own
        # containers would set the session marks before the run's container.
        t0 = marks["start"]
        relative = {k: (v - t0 if k != "pooled" else v) for k, v in marks.items()}
        relative["execute_s"] = result.timings.execute_s
        return relative, result


def summarise(samples: list[dict[str, float]]) -> list[dict[str, Any]]:
    """Median duration of each span over ``samples`` (in ms), and its share of the total."""
    rows = []
    total = statistics.median(s["end"] - s["start"] for s in samples)
    for name, begin, finish in PHASES:
        spans = [s[finish] - s[begin] for s in samples if begin in s and finish in s]
        if not spans:
            continue
        median = statistics.median(spans)
        rows.append(
            {"phase": name, "median_ms": round(median * 1000, 1),
             "share": round(median / total, 3) if total else None}
        )
    rows.append({"phase": "total (run() call)", "median_ms": round(total * 1000, 1), "share": 1.0})
    execute = [s["execute_s"] for s in samples if "execute_s" in s]
    if execute:
        rows.append(
            {"phase": "  of which the runner's execute_s (user process)",
             "median_ms": round(statistics.median(execute) * 1000, 1),
             "share": round(statistics.median(execute) / total, 3) if total else None}
        )
    return rows


UV_SUMMARY = ("Resolved", "Prepared", "Installed", "Uninstalled", "Bytecode compiled", "Audited")


class InstallSteps:
    """Records the environment cache's internal jobs (probe, install, publish) and volume steps.

    Create it before the run that installs, call `stop` after it: ``entries``
    then lists ``{"step": ..., "seconds": ...}`` in order.
    """

    def __init__(self, executor: Executor) -> None:
        self.entries: list[dict[str, Any]] = []
        self._on = True
        cache = executor.env_cache
        if cache is None:
            return
        original_drive = cache.drive

        def drive(job: dict[str, Any], **kwargs: Any) -> Any:
            started = time.perf_counter()
            outcome = original_drive(job, **kwargs)
            if self._on:
                mode = str(job.get("mode"))
                entry: dict[str, Any] = {
                    "step": {"run": "probe the image's python", "install": "install container",
                             "publish": "publish container", "prune": "prune container"}.get(mode, mode),
                    "seconds": round(time.perf_counter() - started, 3),
                }
                install = ((outcome.frame or {}).get("install") or {}) if mode == "install" else {}
                if install:
                    entry["installer_s"] = round(float(install.get("duration_s") or 0.0), 3)
                    entry["installer"] = install.get("installer")
                    entry["log"] = [
                        line.strip() for line in str(install.get("log_tail", "")).splitlines()
                        if line.strip().startswith(UV_SUMMARY)
                    ]
                self.entries.append(entry)
            return outcome

        cache.drive = drive
        backend = cache.backend
        for name, label in (("ensure_volume", "create a volume (chown container if new)"),
                            ("remove_volume", "remove the staging volume")):
            original = getattr(backend, name)

            def wrapped(*args: Any, _original: Any = original, _label: str = label,
                        **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    if self._on:
                        self.entries.append(
                            {"step": _label, "seconds": round(time.perf_counter() - started, 3)}
                        )

            setattr(backend, name, wrapped)

    def stop(self) -> list[dict[str, Any]]:
        self._on = False
        return self.entries
