"""Where the time of one run goes, measured from outside `ai_data_agent` (no src change).

    profiler = PhaseProfiler(executor)              # wraps its backend and pool
    marks, result = profiler.run(RunRequest(code="..."))   # {"start": 0.0, "ready": 0.031, ...}
    steps = InstallSteps(executor); ...; steps.stop()      # the environment cache's sandboxes

The executor's sessions (`backend.Session`) are wrapped, for the profiled runs
only, so that the moments the container is started or taken from the pool, the
runner's bundle and the job are sent, each runner phase is seen (from the
``on_event`` callback of `Conversation`), ``go`` is sent, the result frame
arrives, the stream ends and the container is removed are recorded with
`time.perf_counter`. `PHASES` turns consecutive marks into named spans. An
executor with a warm pool answers at the result frame and removes the
container afterwards (the driver's deferred removal): its removal is waited
for after the run and reported as its own span, outside the run() call.

Two frames that arrive in one chunk of the stream get marks a fraction of a
millisecond out of order (the result is marked when the chunk is read, a phase
when it is parsed), so a tiny span can show as -0.x ms.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from ai_data_agent.executor import Executor, RunEvent
from ai_data_agent.executor.delivery import bundle
from ai_data_agent.executor.driver import Assignment
from ai_data_agent.models import RunRequest, RunResult

__all__ = ["PHASES", "InstallSteps", "PhaseProfiler", "summarise"]

# (span name, from mark, to mark, which runs): in the order they happen. "inline"
# runs remove their container before answering, "deferred" ones after. A span
# whose marks are missing (a pooled container has no start, a run without
# requirements no "installing") is left out.
PHASES = [
    ("controller: validate, resolve, cache lookup", "start", "container", "any"),
    ("container: take from pool / create+attach+start", "container", "container_ready", "any"),
    ("send the runner's bundle (fresh containers)", "container_ready", "bundle_sent", "any"),
    ("send the job", "bundle_sent", "job_sent", "any"),
    ("runner: read the job, sandbox dir, env -> ready", "job_sent", "ready", "any"),
    ("controller: ready -> go", "ready", "go", "any"),
    ("runner: go -> running (checks, verify)", "go", "running", "any"),
    ("user code: interpreter start + code", "running", "collecting", "any"),
    ("runner: artifacts, cleanup -> result frame", "collecting", "result", "any"),
    ("runner exit -> end of stream", "result", "eof", "inline"),
    ("controller: after end of stream", "eof", "remove_start", "inline"),
    ("docker rm", "remove_start", "remove_end", "inline"),
    ("controller: build the result", "remove_end", "end", "inline"),
    ("controller: result frame -> answer", "result", "end", "deferred"),
    ("docker rm, after the answer (deferred)", "remove_start", "remove_end", "deferred"),
]
RESULT_FRAME = b'"k": "result"'


class _TimedSession:
    """A backend session that records when things happen to it."""

    def __init__(self, inner: Any, marks: dict[str, float]) -> None:
        self._inner = inner
        self._marks = marks
        self._run_thread = threading.get_ident()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _mark(self, name: str) -> None:
        self._marks.setdefault(name, time.perf_counter())

    def send(self, data: bytes) -> None:
        self._inner.send(data)
        if data == bundle():
            self._mark("bundle_sent")
        elif data == b"go\n":
            self._mark("go")
        else:
            self._mark("job_sent")  # the first send after the bundle; inputs follow it

    def read(self, timeout_s: float) -> Any:
        chunk = self._inner.read(timeout_s)
        if chunk is not None:
            if not chunk[1]:
                self._mark("eof")
            elif RESULT_FRAME in chunk[1]:
                self._mark("result")
        return chunk

    def remove(self) -> None:
        if threading.get_ident() != self._run_thread:  # the driver's deferred removal
            self._marks["deferred"] = 1.0
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
            if marks is None:  # the pool's refill thread
                return original_start(spec, run_id)
            marks["container"] = time.perf_counter()
            session = original_start(spec, run_id)
            marks["container_ready"] = time.perf_counter()
            return _TimedSession(session, marks)

        backend.start = start  # type: ignore[method-assign]
        pool = executor.pool
        if pool is not None:
            original_take = pool.take

            def take(spec: Any, warmth: Any = None) -> Any:
                marks = getattr(self._local, "marks", None)
                if marks is None:
                    return original_take(spec, warmth)
                marks["container"] = time.perf_counter()
                session = original_take(spec, warmth)
                if session is None:
                    return None
                marks["container_ready"] = time.perf_counter()
                marks["bundle_sent"] = marks["container_ready"]  # sent when the pool started it
                marks["pooled"] = 1.0
                return _TimedSession(session, marks)

            pool.take = take  # type: ignore[method-assign]

    def run(self, request: RunRequest) -> tuple[dict[str, float], RunResult]:
        """Run ``request``; return marks relative to the start (seconds) and the result.

        A removal deferred past the answer is waited for (untimed for the run) so
        that its own span is there too.
        """
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
        self.executor.driver.close()  # finishes a deferred removal
        # Profile runs that install nothing (or hit the cache): an install's own
        # containers would set the session marks before the run's container.
        t0 = marks["start"]
        flags = ("pooled", "deferred")
        relative = {k: (v if k in flags else v - t0) for k, v in marks.items()}
        relative["execute_s"] = result.timings.execute_s
        return relative, result


def _kind(sample: dict[str, float]) -> str:
    return "deferred" if sample.get("deferred") else "inline"


def summarise(samples: list[dict[str, float]]) -> list[dict[str, Any]]:
    """Median duration of each span over ``samples`` (in ms), and its share of the run() call."""
    rows = []
    total = statistics.median(s["end"] - s["start"] for s in samples)
    for name, begin, finish, kind in PHASES:
        spans = [
            s[finish] - s[begin]
            for s in samples
            if begin in s and finish in s and kind in ("any", _kind(s))
        ]
        if not spans:
            continue
        median = statistics.median(spans)
        outside = kind == "deferred" and begin == "remove_start"
        share = None if outside or not total else round(median / total, 3)
        rows.append({"phase": name, "median_ms": round(median * 1000, 1), "share": share})
    rows.append({"phase": "total (run() call)", "median_ms": round(total * 1000, 1), "share": 1.0})
    execute = [s["execute_s"] for s in samples if "execute_s" in s]
    if execute:
        median = statistics.median(execute)
        rows.append(
            {
                "phase": "  of which the runner's execute_s (user process)",
                "median_ms": round(median * 1000, 1),
                "share": round(median / total, 3) if total else None,
            }
        )
    return rows


UV_SUMMARY = ("Resolved", "Prepared", "Installed", "Uninstalled", "Bytecode compiled", "Audited")
STEP_NAMES = {
    "probe": "probe the image's python",
    "install": "install container",
    "publish": "publish container",
    "prune": "prune container",
}


class InstallSteps:
    """Records the environment cache's sandboxes (probe, install, publish, prune) and volume steps.

    Create it before the run that installs, call `stop` after it: ``entries``
    then lists ``{"step": ..., "seconds": ...}`` in order. The cache drives its
    sandboxes through the executor's `SandboxDriver`, whose `drive` is wrapped
    here for every job but the run's own.
    """

    def __init__(self, executor: Executor) -> None:
        self.entries: list[dict[str, Any]] = []
        self._on = True
        if executor.env_cache is None:
            return
        driver = executor.driver
        original_drive = driver.drive

        def drive(assignment: Assignment, **kwargs: Any) -> Any:
            started = time.perf_counter()
            transcript = original_drive(assignment, **kwargs)
            mode = assignment.job.mode
            if self._on and mode != "run":
                self._record(mode, time.perf_counter() - started, transcript)
            return transcript

        driver.drive = drive  # type: ignore[method-assign]
        backend = executor.backend
        for name, label in (
            ("ensure_volume", "create a volume (chown container if new)"),
            ("remove_volume", "remove the staging volume"),
        ):
            setattr(backend, name, self._timed(getattr(backend, name), label))

    def _record(self, mode: str, seconds: float, transcript: Any) -> None:
        entry: dict[str, Any] = {"step": STEP_NAMES.get(mode, mode), "seconds": round(seconds, 3)}
        frame = transcript.result
        install = frame.install if frame is not None and mode == "install" else None
        if install is not None:
            entry["installer_s"] = round(install.duration_s, 3)
            entry["installer"] = install.installer
            entry["log"] = [
                line.strip()
                for line in install.log_tail.splitlines()
                if line.strip().startswith(UV_SUMMARY)
            ]
        self.entries.append(entry)

    def _timed(self, original: Any, label: str) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                if self._on:
                    seconds = round(time.perf_counter() - started, 3)
                    self.entries.append({"step": label, "seconds": seconds})

        return wrapped

    def stop(self) -> list[dict[str, Any]]:
        self._on = False
        return self.entries
