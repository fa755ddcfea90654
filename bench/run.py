"""The benchmark: ai-data-agent against the raw Docker floor, in one run.

    .venv/bin/python -m bench.run            # or `python bench/run.py`, or `make bench`
    BENCH_N=40 BENCH_PEERS=1 .venv/bin/python -m bench.run

Prints a table and writes ``bench/results.json`` (``BENCH_OUT``): hello-world
latency (p50/p95) of the raw Docker floor (`bench.floor`), of ai-data-agent
with a fresh container and with the warm pool, each through the library and
through the HTTP daemon (a subprocess on loopback); a pandas script on its
first run (cold install, and with uv's download cache warm), on later runs
(cache hit), on an image with pandas preinstalled, and with the per-run
pip install; throughput at 4 concurrent clients; the daemon's RSS idle and
under load; where the time of a run goes (`bench.profile`); optionally
llm-sandbox (``BENCH_PEERS=1``). Every figure is also a ratio to the floor
measured in this same run, and the targets are evaluated.

Samples of the variants are interleaved round by round (and throughput blocks
run in A..Z Z..A A..Z Z..A order), so load from other work on the machine falls
on all of them alike. Before every timed pooled sample the previous run's
deferred removal is finished and the pool refilled: pool figures are those of
a server between requests, not of one refilling. With ``BENCH_EXPERIMENTS`` a
daemon with as many workers as clients and the floor with a sandbox's mounts
are measured alongside, labelled as such. The daemons are started with the
tests' harness (`tests.support.daemon`).

Knobs (environment): BENCH_N (hello-world samples per variant, 20),
BENCH_WARMUP (2), BENCH_POOL_SIZE (2), BENCH_PANDAS_N (5), BENCH_PER_RUN_N (3),
BENCH_CLIENTS (4), BENCH_TPUT_RUNS (runs per client, 12), BENCH_TPUT_BLOCKS (4),
BENCH_PROFILE_N (8), BENCH_EXPERIMENTS (1), BENCH_PEERS (0), BENCH_PEER_N (3),
BENCH_DATASET_BYTES (2 GiB), BENCH_DESCRIBE_BYTES (1 GiB),
BENCH_PEER_PYTHON (/tmp/peer-venv/bin/python), BENCH_SKIP (comma list of: http,
pandas, throughput, profile, preimport, sessions, datasets, cluster), BENCH_OUT, BENCH_LOG_LEVEL (WARNING); the
cluster section (`bench.cluster`) has knobs of its own.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

try:
    import docker
    import httpx
    from loguru import logger

    from ai_data_agent.executor import Executor
    from ai_data_agent.executor.docker.backend import DockerBackend
    from ai_data_agent.models import RunRequest, RunResult
    from ai_data_agent.settings import Settings
except ImportError as exc:  # pragma: no cover - a usage error, not a code path
    sys.exit(f"bench: {exc}; run it with the project's venv: .venv/bin/python -m bench.run")

from ai_data_agent.client import Client
from ai_data_agent.executor.spec import LABEL_CONTROLLER, LABEL_RUN_ID
from bench import checkpoints as checkpoint_bench
from bench import cluster as cluster_bench
from bench import datasets as dataset_bench
from bench import preimport as preimport_bench
from bench.datasets import DatasetBench
from bench.floor import HELLO, Floor, vm_rss
from bench.profile import InstallSteps, PhaseProfiler, summarise
from bench.sessions import SessionBench
from tests.support.daemon import Daemon, DaemonError
from tests.support.settings import ca_bundle

REPO = Path(__file__).resolve().parent.parent
PANDAS_IMAGE = "ai-data-agent/bench-pandas:latest"
PANDAS_CODE = "import pandas as pd; print(pd.DataFrame({'a':[1,2]}).sum())"
MB = 1024 * 1024
VARIANTS = ["floor", "library_fresh", "library_pool", "http_fresh", "http_pool"]
LABELS = {
    "floor": "raw Docker floor (docker-py)",
    "library_fresh": "library, fresh container",
    "library_pool": "library, warm pool",
    "http_fresh": "HTTP, fresh container",
    "http_pool": "HTTP, warm pool",
    "exp_http_workers": "experiment: HTTP, fresh, workers = clients",
    "diag_floor_lean": "diagnostic: floor without the engine's network setup, as sandboxes",
}


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    low = math.floor(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(percentile(values, 0.5), 4),
        "p95": round(percentile(values, 0.95), 4),
        "mean": round(statistics.fmean(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


@dataclass
class Config:
    n: int
    warmup: int
    pool_size: int
    pandas_n: int
    per_run_n: int
    clients: int
    tput_runs: int
    tput_blocks: int
    profile_n: int
    experiments: bool
    peers: bool
    peer_n: int
    peer_python: Path
    out: Path
    skip: set[str]
    ca_bundle: Path | None

    @classmethod
    def from_env(cls) -> Config:
        env = os.environ

        def number(name: str, default: int) -> int:
            return int(env.get(name) or default)

        return cls(
            n=number("BENCH_N", 20),
            warmup=number("BENCH_WARMUP", 2),
            pool_size=number("BENCH_POOL_SIZE", 2),
            pandas_n=number("BENCH_PANDAS_N", 5),
            per_run_n=number("BENCH_PER_RUN_N", 3),
            clients=number("BENCH_CLIENTS", 4),
            tput_runs=number("BENCH_TPUT_RUNS", 12),
            tput_blocks=number("BENCH_TPUT_BLOCKS", 4),
            profile_n=number("BENCH_PROFILE_N", 8),
            experiments=env.get("BENCH_EXPERIMENTS", "1") != "0",
            peers=env.get("BENCH_PEERS") == "1",
            peer_n=number("BENCH_PEER_N", 3),
            peer_python=Path(env.get("BENCH_PEER_PYTHON") or "/tmp/peer-venv/bin/python"),  # noqa: S108
            out=Path(env.get("BENCH_OUT") or REPO / "bench" / "results.json"),
            skip={s.strip() for s in (env.get("BENCH_SKIP") or "").split(",") if s.strip()},
            ca_bundle=ca_bundle(),
        )


@dataclass
class Sampler:
    """One variant: how to run one hello world, and what came of it."""

    name: str
    run: Callable[[], str]  # returns stdout; raises on failure
    before: Callable[[], None] = lambda: None  # untimed: e.g. wait for the pool to refill
    after: Callable[[], None] = lambda: None  # untimed: e.g. check that the pool was used
    # What its last runs leave going after their answers (container removals), which a
    # throughput block waits for inside its time: every variant pays for its own.
    settle: Callable[[], None] = lambda: None
    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def sample(self, record: bool) -> None:
        for _attempt in range(3):
            self.before()
            started = time.perf_counter()
            try:
                out = self.run()
                elapsed = time.perf_counter() - started
                if "hello" not in out:
                    raise RuntimeError(f"unexpected stdout {out[:200]!r}")
            except Exception as exc:  # recorded, and the sample is retried
                self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            self.after()
            if record:
                self.seconds.append(elapsed)
            return


class Bench:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.stack = ExitStack()
        self.tmp = Path(tempfile.mkdtemp(prefix="ai-data-agent-bench-"))
        self.client = docker.from_env(timeout=120)
        self.api = self.client.api
        self.image = DockerBackend(Settings(ca_bundle=cfg.ca_bundle)).resolve_image()
        self.floor = Floor(self.client, self.image)
        self.results: dict[str, Any] = {"notes": []}
        self.daemons: dict[str, Daemon] = {}
        self.clients: dict[str, Client] = {}
        self.executors: dict[str, Executor] = {}

    def note(self, text: str) -> None:
        log(text)
        self.results["notes"].append(text)

    def settings(self, **overrides: Any) -> Settings:
        base: dict[str, Any] = {
            # Resolved once (below): each executor would otherwise try to pull
            # the default image again before falling back to the local one.
            "sandbox_image": getattr(self, "image", None) or Settings().sandbox_image,
            "ca_bundle": self.cfg.ca_bundle,
            "pool_size": 0,
            "env_cache_index": self.tmp / "library-envcache.sqlite3",
        }
        base.update(overrides)
        return Settings(**base)

    def executor(self, name: str, **overrides: Any) -> Executor:
        executor = Executor(self.settings(**overrides))
        self.stack.callback(executor.close)
        self.executors[name] = executor
        return executor

    # -- setup ------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        def text(cmd: list[str]) -> str:
            try:
                return subprocess.run(
                    cmd, capture_output=True, text=True, check=False
                ).stdout.strip()
            except OSError:
                return ""

        mem_kb = 0
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_kb = int(line.split()[1])
        cpu = ""
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        version = self.client.version()
        return {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "nproc": os.cpu_count(),
            "cpu": cpu,
            "memory_gib": round(mem_kb / 1024 / 1024, 1),
            "kernel": platform.release(),
            "docker_server": version.get("Version"),
            "docker_api": version.get("ApiVersion"),
            "python_host": platform.python_version(),
            "sandbox_image": self.image,
            "git_commit": text(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
            "load_average_start": os.getloadavg(),
            "config": {
                k: (str(v) if isinstance(v, Path | set) else v) for k, v in vars(self.cfg).items()
            },
        }

    def ensure_pandas_image(self) -> bool:
        script = REPO / "images" / "bench-pandas" / "build.sh"
        env = dict(os.environ, BASE_IMAGE=self.image)
        done = subprocess.run([str(script)], env=env, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            self.note(f"cannot build {PANDAS_IMAGE}: {done.stderr.strip()[-500:]}")
            return False
        return True

    # -- hello world: latency -----------------------------------------------------------
    def _library_sampler(self, name: str, executor: Executor) -> Sampler:
        def run() -> str:
            result = executor.run(RunRequest(code=HELLO))
            _check(result)
            return result.stdout

        # A run answers before its container is removed; the next sample (any variant)
        # starts once that removal is done, so none of them pays for another's.
        close = executor.driver.close
        return Sampler(name, run, lambda: _wait_idle(executor), close, settle=close)

    def _pool_size(self, daemon: Daemon) -> int:
        return int(daemon.settings.get("pool_size") or 0)

    def _pool_ids(self, daemon: Daemon) -> set[str]:
        """Running containers of ``daemon``'s controller that were started for its pool."""
        return self._containers(daemon, pooled=True, stopped=False)

    def _run_ids(self, daemon: Daemon) -> set[str]:
        """Containers of ``daemon``'s controller that run (or ran) a job, not pooled ones."""
        return self._containers(daemon, pooled=False, stopped=True)

    def _containers(self, daemon: Daemon, *, pooled: bool, stopped: bool) -> set[str]:
        controller = daemon.controller_id
        if controller is None:
            return set()
        label = {"label": f"{LABEL_CONTROLLER}={controller}"}
        return {
            c["Id"]
            for c in self.api.containers(all=stopped, filters=label)
            if (c.get("Labels") or {}).get(LABEL_RUN_ID, "").startswith("pool-") == pooled
        }

    def _wait_pool_full(self, daemon: Daemon, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self._pool_ids(daemon)) >= self._pool_size(daemon):
                return True
            time.sleep(0.02)
        return False

    def _http_sampler(self, name: str, daemon: Daemon) -> Sampler:
        # Pool hits are checked (a pooled container gone after the run) while
        # latency is sampled, not under the throughput load.
        state: dict[str, Any] = {
            "before": set[str](),
            "hits": 0,
            "samples": 0,
            "check": True,
            "overhead": [],
        }

        pooled = self._pool_size(daemon) > 0
        client = self.clients[name]

        def before() -> None:
            if pooled:
                if daemon.controller_id is None:
                    time.sleep(1.0)
                else:
                    self._wait_pool_full(daemon)
                    state["before"] = self._pool_ids(daemon)

        def run() -> str:
            started = time.perf_counter()
            result = client.run(HELLO)
            _check(result)
            if state["check"]:
                # The client's wall time beyond the executor's own total_s: HTTP,
                # the run store, the queue and the worker hand-offs.
                state["overhead"].append(time.perf_counter() - started - result.timings.total_s)
            return result.stdout

        def settle() -> None:
            if not pooled and daemon.controller_id is not None:
                # Its containers go after the answers: the next sample starts without them.
                deadline = time.monotonic() + 10
                while self._run_ids(daemon) and time.monotonic() < deadline:
                    time.sleep(0.02)

        def after() -> None:
            settle()
            if state["check"] and pooled and daemon.controller_id is not None:
                state["samples"] += 1
                # The used container goes after the answer (deferred removal).
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    if state["before"] - self._pool_ids(daemon):
                        state["hits"] += 1
                        break
                    time.sleep(0.02)

        sampler = Sampler(name, run, before, after, settle=settle)
        sampler.pool_state = state  # type: ignore[attr-defined]
        return sampler

    def start_daemons(self) -> None:
        daemons: list[tuple[str, dict[str, Any]]] = [
            ("http_fresh", {}),
            ("http_pool", {"pool_size": self.cfg.pool_size}),
        ]
        if self.cfg.experiments and "throughput" not in self.cfg.skip:
            # The default worker count is the CPU count (2 here): with 4 clients,
            # half the runs queue. Throughput only.
            daemons.append(("exp_http_workers", {"max_concurrent_runs": self.cfg.clients}))
        for name, extra in daemons:
            values = {"sandbox_image": self.image, "ca_bundle": self.cfg.ca_bundle, **extra}
            try:
                daemon = Daemon.start(self.tmp / name, {"pool_size": 0, **values})
            except DaemonError as exc:
                self.note(f"{name}: daemon did not start: {exc}")
                continue
            self.stack.callback(daemon.stop)
            self.daemons[name] = daemon
            self.clients[name] = Client(daemon.url, daemon.token, timeout=120)
            self.stack.callback(self.clients[name].close)
            size = self._pool_size(daemon)
            if size and daemon.controller_id is None:
                self.note(f"{name}: no controller id in the daemon log; pool hits not verified")
            elif size and not self._wait_pool_full(daemon, timeout_s=30):
                self.note(
                    f"{name}: the daemon's pool did not fill in 30 s: warm pool n/a over HTTP"
                )
                daemon.stop()
                del self.daemons[name]

    def hello_latency(self) -> dict[str, Sampler]:
        samplers = {"floor": Sampler("floor", lambda: self.floor.run_once()[1])}
        if self.cfg.experiments:
            samplers["diag_floor_lean"] = Sampler(
                "diag_floor_lean", lambda: self.floor.run_once(lean=True)[1]
            )
        samplers["library_fresh"] = self._library_sampler(
            "library_fresh", self.executor("library_fresh")
        )
        pooled = self.executor("library_pool", pool_size=self.cfg.pool_size)
        pooled.start_pool()
        samplers["library_pool"] = self._library_sampler("library_pool", pooled)
        for name, daemon in self.daemons.items():
            if name in VARIANTS:
                samplers[name] = self._http_sampler(name, daemon)
        order = [v for v in [*VARIANTS, "diag_floor_lean"] if v in samplers]
        rounds = self.cfg.warmup + self.cfg.n
        taken_before = pooled.pool.taken if pooled.pool else 0
        for i in range(rounds):
            if i % 5 == 0:
                log(f"hello world: round {i + 1}/{rounds}")
            shift = i % len(order)
            for name in order[shift:] + order[:shift]:
                samplers[name].sample(record=i >= self.cfg.warmup)
        if pooled.pool is not None:
            self.results["library_pool_taken"] = pooled.pool.taken - taken_before
            self.results["library_pool_missed"] = pooled.pool.missed
        return samplers

    # -- throughput -------------------------------------------------------------------
    def throughput(self, samplers: dict[str, Sampler]) -> dict[str, Any]:
        clients = self.cfg.clients
        blocks = self.cfg.tput_blocks
        per_block = max(1, self.cfg.tput_runs // blocks)
        extra = ["exp_http_workers", "diag_floor_lean"]
        order = [v for v in [*VARIANTS, *extra] if v in samplers]
        totals: dict[str, dict[str, Any]] = {
            v: {
                "runs": 0,
                "errors": 0,
                "wall_s": 0.0,
                "blocks": [],
                "machine_ticks": 0,
                "controller_ticks": 0,
                "engine_ticks": 0,
            }
            for v in order
        }
        peaks: dict[str, int] = {}
        sequences = [order if b % 2 == 0 else list(reversed(order)) for b in range(blocks)]
        for block, names in enumerate(sequences):
            for name in names:
                sampler = samplers[name]
                sampler.before()
                if name == "library_pool":
                    _wait_idle(self.executors["library_pool"])
                log(
                    f"throughput: {name}, block {block + 1}/{blocks}, {clients} clients x {per_block}"
                )
                stop_rss = threading.Event()
                daemon = self.daemons.get(name)
                rss_thread = None
                if daemon is not None:
                    rss_thread = threading.Thread(
                        target=_sample_rss, args=(daemon, stop_rss, peaks, name), daemon=True
                    )
                    rss_thread.start()
                controller_pid = daemon.pid if daemon is not None else os.getpid()
                engine = _engine_pids()
                cpu_before = (
                    _machine_busy_ticks(),
                    _process_ticks(controller_pid),
                    sum(_process_ticks(pid) for pid in engine),
                )
                done, errors, wall = _hammer(sampler.run, clients, per_block)
                settling = time.perf_counter()
                sampler.settle()
                wall += time.perf_counter() - settling
                machine = _machine_busy_ticks() - cpu_before[0]
                controller = _process_ticks(controller_pid) - cpu_before[1]
                engine_ticks = sum(_process_ticks(pid) for pid in engine) - cpu_before[2]
                stop_rss.set()
                if rss_thread is not None:
                    rss_thread.join()
                entry = totals[name]
                entry["runs"] += done
                entry["errors"] += errors
                entry["wall_s"] += wall
                entry["blocks"].append(round(done / wall, 3) if wall else None)
                entry["machine_ticks"] += machine
                entry["controller_ticks"] += controller
                entry["engine_ticks"] += engine_ticks
        out: dict[str, Any] = {}
        hz = os.sysconf("SC_CLK_TCK")
        ncpu = os.cpu_count() or 1
        for name, entry in totals.items():
            rate = entry["runs"] / entry["wall_s"] if entry["wall_s"] else 0.0
            machine_s = entry.pop("machine_ticks") / hz
            controller_s = entry.pop("controller_ticks") / hz
            engine_s = entry.pop("engine_ticks") / hz
            runs = max(entry["runs"], 1)
            out[name] = dict(
                entry,
                runs_per_s=round(rate, 3),
                wall_s=round(entry["wall_s"], 2),
                # CPU seconds per completed run: the whole machine (everything
                # running on it, other work included) and the controller process.
                machine_cpu_s_per_run=round(machine_s / runs, 4),
                controller_cpu_s_per_run=round(controller_s / runs, 4),
                # dockerd + containerd (their shims and the containers are not in it).
                engine_cpu_s_per_run=round(engine_s / runs, 4) if engine_s else None,
                machine_busy=round(machine_s / (entry["wall_s"] * ncpu), 3)
                if entry["wall_s"]
                else None,
            )
        self.results["rss_peak_bytes"] = peaks
        return out

    # -- pandas -----------------------------------------------------------------------
    def pandas(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        request = RunRequest(code=PANDAS_CODE, requirements=["pandas"])

        def timed(executor: Executor, req: RunRequest) -> tuple[float, RunResult]:
            started = time.perf_counter()
            result = executor.run(req)
            elapsed = time.perf_counter() - started
            if result.status != "succeeded" or "a    3" not in result.stdout.replace("\t", " "):
                raise RuntimeError(
                    f"pandas run {result.status}: {result.error} {result.stdout[-200:]!r} "
                    f"{result.stderr[-300:]!r} {result.install.log_tail[-300:]!r}"
                )
            return elapsed, result

        def install_info(seconds: float, result: RunResult) -> dict[str, Any]:
            return {
                "seconds": round(seconds, 3),
                "cache_hit": result.install.cache_hit,
                "install_s": result.timings.install_s,
                "execute_s": result.timings.execute_s,
                "installer": result.install.installer,
                "fallback_triggered": result.install.fallback_triggered,
                "packages": {p.name: p.version for p in result.install.packages},
            }

        # Cold: a new index (a miss), no uv download cache: everything downloads. The
        # set leaves the shared volume first, or the install would adopt it from there.
        log("pandas: first run, cold (fresh cache index, uv download cache off)")
        cold = self.executor(
            "pandas_cold", env_cache_index=self.tmp / "cold.sqlite3", uv_shared_cache=False
        )
        forget_everywhere(cold, ["pandas"])
        steps = InstallSteps(cold)
        seconds, result = timed(cold, request)
        out["cold"] = install_info(seconds, result)
        out["cold"]["steps"] = _with_rest(steps.stop(), seconds)
        # Cache hits, interleaved with the same script on the pandas image.
        preinstalled = None
        if self.ensure_pandas_image():
            preinstalled = self.executor("pandas_preinstalled", sandbox_image=PANDAS_IMAGE)
        hits: list[float] = []
        pre: list[float] = []
        hit_flags: list[bool] = []
        for i in range(self.cfg.pandas_n):
            log(f"pandas: cache hit and preinstalled image, {i + 1}/{self.cfg.pandas_n}")
            seconds, result = timed(cold, request)
            hits.append(seconds)
            hit_flags.append(result.install.cache_hit)
            if preinstalled is not None:
                seconds, _ = timed(preinstalled, RunRequest(code=PANDAS_CODE))
                pre.append(seconds)
        # The second run starts while the new environment's bytecode may still compile.
        out["cache_hit"] = dict(
            summary(hits[2:] or hits),
            second_run=round(hits[0], 3),
            third_run=round(hits[1], 3) if len(hits) > 1 else None,
            all_cache_hits=all(hit_flags),
        )
        out["preinstalled"] = summary(pre) if pre else {"n": 0, "note": "image unavailable"}
        # A miss with uv's download cache warm: prime it once (untimed), then a
        # second fresh index installs from the cache.
        log("pandas: first run with uv's download cache warm (after one priming install)")
        prime = self.executor("pandas_prime", env_cache_index=self.tmp / "prime.sqlite3")
        forget_everywhere(prime, ["pandas"])
        timed(prime, request)
        warm = self.executor("pandas_warm", env_cache_index=self.tmp / "warm.sqlite3")
        forget_everywhere(warm, ["pandas"])
        steps = InstallSteps(warm)
        seconds, result = timed(warm, request)
        out["miss_warm_uv_cache"] = install_info(seconds, result)
        out["miss_warm_uv_cache"]["steps"] = _with_rest(steps.stop(), seconds)
        # The per-run pip install into the sandbox dir.
        per_run = []
        for i in range(self.cfg.per_run_n):
            log(f"pandas: per-run pip install {i + 1}/{self.cfg.per_run_n}")
            seconds, result = timed(cold, request.model_copy(update={"install_mode": "per_run"}))
            per_run.append(seconds)
            out.setdefault("per_run_install_s", []).append(result.timings.install_s)
            retries = [
                line.strip()[:200]
                for line in result.install.log_tail.splitlines()
                if "Retrying" in line or "timed out" in line.lower()
            ]
            if retries:
                out.setdefault("per_run_network_retries", []).append(retries[:3])
        out["per_run"] = summary(per_run)
        out["prewarmed"] = self.prewarmed(request)
        return out

    def prewarmed(self, request: RunRequest) -> dict[str, Any]:
        """A daemon told to prewarm pandas (after the set left the volume): its first run."""
        log("pandas: a daemon that prewarms pandas, then its first pandas run")
        forget_everywhere(self.executor("pandas_forget"), ["pandas"])
        values = {"sandbox_image": self.image, "ca_bundle": self.cfg.ca_bundle, "pool_size": 0}
        daemon = Daemon.start(self.tmp / "prewarm", {**values, "prewarm": '[["pandas"]]'})
        try:
            started = time.monotonic()
            ready = ""
            while "1 of 1 set(s) ready" not in ready and time.monotonic() - started < 300:
                time.sleep(0.5)
                ready = httpx.get(f"{daemon.url}/readyz", timeout=5).text
            warmed_s = time.monotonic() - started
            with Client(daemon.url, daemon.token, timeout=120) as client:
                seconds, result = time.perf_counter(), client.run_request(request)
                seconds = time.perf_counter() - seconds
        finally:
            daemon.stop()
        return {
            "prewarm_s": round(warmed_s, 2),
            "first_run_s": round(seconds, 3),
            "cache_hit": result.install.cache_hit,
            "status": result.status.value,
        }

    # -- phases -------------------------------------------------------------------------
    def phases(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        n = self.cfg.profile_n
        pooled = self.executor("profile_pool", pool_size=self.cfg.pool_size)
        pooled.start_pool()
        fresh = self.executor("profile_fresh")
        profilers = {"pooled": PhaseProfiler(pooled), "fresh": PhaseProfiler(fresh)}
        samples: dict[str, list[dict[str, float]]] = {"pooled": [], "fresh": []}
        log(f"profile: {n} pooled and {n} fresh hello-world runs")
        for _ in range(n + 1):  # the first of each is a warm-up
            _wait_idle(pooled)
            marks, result = profilers["pooled"].run(RunRequest(code=HELLO))
            _check(result)
            if marks.get("pooled"):
                samples["pooled"].append(marks)
            marks, result = profilers["fresh"].run(RunRequest(code=HELLO))
            _check(result)
            samples["fresh"].append(marks)
        samples = {k: v[1:] if len(v) > n else v for k, v in samples.items()}
        if "pandas_cold" in self.executors:
            log("profile: pandas cache hits")
            hit = PhaseProfiler(self.executors["pandas_cold"])
            samples["cache_hit"] = []
            for _ in range(min(n, 5)):
                marks, result = hit.run(RunRequest(code=PANDAS_CODE, requirements=["pandas"]))
                if result.install.cache_hit:
                    samples["cache_hit"].append(marks)
            if "pandas_preinstalled" in self.executors:
                pre = PhaseProfiler(self.executors["pandas_preinstalled"])
                samples["preinstalled"] = [
                    pre.run(RunRequest(code=PANDAS_CODE))[0] for _ in range(min(n, 5))
                ]
        for name, values in samples.items():
            if values:
                out[name] = summarise(values)
        return out

    # -- memory ------------------------------------------------------------------------
    def floor_controller_rss(self) -> int | None:
        done = subprocess.run(
            [sys.executable, "-m", "bench.floor", self.image],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            return int(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            self.note(f"floor controller RSS not measured: {done.stderr[-300:]}")
            return None

    # -- peers --------------------------------------------------------------------------
    def peers(self) -> dict[str, Any]:
        python = self.cfg.peer_python
        if not python.exists():
            venv = python.parent.parent
            log(f"peers: creating {venv} with llm-sandbox[docker]")
            made = subprocess.run(
                ["python3", "-m", "venv", str(venv)], capture_output=True, text=True, check=False
            )
            if made.returncode == 0:
                made = subprocess.run(
                    [str(venv / "bin" / "pip"), "install", "-q", "llm-sandbox[docker]"],
                    capture_output=True,
                    text=True,
                    check=False,
                )
            if made.returncode != 0 or not python.exists():
                return {"skipped": f"cannot install llm-sandbox: {made.stderr.strip()[-300:]}"}
        script = str(REPO / "bench" / "peer_llm_sandbox.py")
        out: dict[str, Any] = {}
        for mode, count, timeout in (
            ("lean", self.cfg.peer_n, 120 * self.cfg.peer_n),
            ("default", 1, 180),
        ):
            log(f"peers: llm-sandbox {mode}, {count} session(s)")
            try:
                done = subprocess.run(
                    [str(python), script, self.image, str(count), mode],
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
                report = json.loads(done.stdout.strip().splitlines()[-1])
            except subprocess.TimeoutExpired:
                report = {"error": f"no answer in {timeout} s"}
            except (ValueError, IndexError):
                report = {"error": f"no report: {done.stderr.strip()[-300:]}"}
            if report.get("seconds"):
                report.update(summary(report["seconds"]))
            out[mode] = report
        return out

    # -- the whole run ------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        started = time.monotonic()
        self.results["meta"] = self.meta()
        log(f"sandbox image {self.image}; floor leftovers removed: {self.floor.cleanup()}")
        if "http" not in cfg.skip:
            self.start_daemons()
            for name, daemon in self.daemons.items():
                self.clients[name].run(HELLO)  # "idle" means after start and one run
                if name in VARIANTS:
                    time.sleep(1.0)
                    self.results.setdefault("rss_idle_bytes", {})[name] = vm_rss(daemon.pid)
        samplers = self.hello_latency()
        self.results["hello_world"] = {
            name: dict(summary(s.seconds), errors=len(s.errors), error_examples=s.errors[:3])
            for name, s in samplers.items()
        }
        for name in ("http_fresh", "http_pool"):
            sampler = samplers.get(name)
            if sampler is not None and hasattr(sampler, "pool_state"):
                state = sampler.pool_state
                entry = self.results["hello_world"][name]
                if name == "http_pool":
                    entry["pool_hits"] = f"{state['hits']}/{state['samples']}"
                overhead = state["overhead"][cfg.warmup :]
                if overhead:
                    entry["http_overhead_p50"] = round(percentile(overhead, 0.5), 4)
        if "library_pool_taken" in self.results:
            self.results["hello_world"]["library_pool"]["pool_hits"] = (
                f"{self.results.pop('library_pool_taken')} taken, "
                f"{self.results.pop('library_pool_missed')} missed"
            )
        for sampler in samplers.values():
            if hasattr(sampler, "pool_state"):
                sampler.pool_state["check"] = False
        if "throughput" not in cfg.skip:
            if "exp_http_workers" in self.daemons:
                daemon = self.daemons["exp_http_workers"]
                samplers["exp_http_workers"] = self._http_sampler("exp_http_workers", daemon)
                samplers["exp_http_workers"].pool_state["check"] = False  # type: ignore[attr-defined]
            self.results["throughput"] = self.throughput(samplers)
        for daemon in self.daemons.values():
            daemon.stop()
        if "pandas" not in cfg.skip:
            if not Path("/sys/class/net/docker0").exists():
                self.note(
                    "the engine's default bridge docker0 is missing (a dockerd started with "
                    "--bridge=none on this host deletes it): installs, which need the bridge "
                    "network, will fail"
                )
            try:
                self.results["pandas"] = self.pandas()
            except Exception as exc:  # report what there is, and why the rest is missing
                self.note(f"pandas section failed: {type(exc).__name__}: {exc}")
        if "preimport" not in cfg.skip:
            log("pre-import: pandas runs and sessions from a pre-imported pool, plain cache hits")
            settings = {"sandbox_image": self.image, "ca_bundle": self.cfg.ca_bundle}
            try:
                bench = preimport_bench.PreimportBench(
                    self.tmp / "preimport", settings, cfg.pandas_n
                )
                self.results["preimport"] = bench.run()
            except Exception as exc:  # report what there is, and why the rest is missing
                self.note(f"pre-import section failed: {type(exc).__name__}: {exc}")
        if "sessions" not in cfg.skip:
            log("sessions: start, cell round trip, a 10-step analysis")
            settings = {"sandbox_image": self.image, "ca_bundle": self.cfg.ca_bundle}
            bench = SessionBench(self.settings, self.tmp, cfg.n, cfg.pool_size)
            try:
                self.results["sessions"] = bench.run(settings)
            except Exception as exc:  # report what there is, and why the rest is missing
                self.note(f"sessions section failed: {type(exc).__name__}: {exc}")
        if "datasets" not in cfg.skip:
            log("datasets: upload, start with a mount, reading it, describe")
            settings = {"sandbox_image": self.image, "ca_bundle": self.cfg.ca_bundle}
            try:
                datasets = DatasetBench(self.tmp / "datasets", settings, cfg.n, cfg.pool_size)
                self.results["datasets"] = datasets.run()
            except Exception as exc:  # report what there is, and why the rest is missing
                self.note(f"datasets section failed: {type(exc).__name__}: {exc}")
        if "checkpoints" not in cfg.skip:
            log("checkpoints: a small namespace, a 100 MB DataFrame, a checkpoint after each cell")
            settings = {"sandbox_image": self.image, "ca_bundle": self.cfg.ca_bundle}
            try:
                bench = checkpoint_bench.CheckpointBench(self.tmp, cfg.n, cfg.pool_size)
                self.results["checkpoints"] = bench.run(settings)
            except Exception as exc:  # report what there is, and why the rest is missing
                self.note(f"checkpoints section failed: {type(exc).__name__}: {exc}")
        if "profile" not in cfg.skip:
            self.results["phases"] = self.phases()
        self.results["rss_floor_controller_bytes"] = self.floor_controller_rss()
        if "cluster" not in cfg.skip:
            try:
                self.results["cluster"] = cluster_bench.measure(self.tmp / "cluster", self.image)
            except Exception as exc:  # report what there is, and why the rest is missing
                self.note(f"cluster section failed: {type(exc).__name__}: {exc}")
        if cfg.peers:
            self.results["peers"] = self.peers()
        self.results["meta"]["load_average_end"] = os.getloadavg()
        self.results["meta"]["duration_s"] = round(time.monotonic() - started, 1)
        self.results["ratios"], self.results["targets"] = evaluate(self.results)
        return self.results

    def close(self) -> None:
        self.stack.close()
        self.floor.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)


def forget_everywhere(executor: Executor, requirements: list[str]) -> None:
    """Take the set out of the shared volume and the index, so that the next run installs it."""
    cache = executor.env_cache
    assert cache is not None
    key = cache.key_for(requirements, executor.backend.resolve_image(), "bench-forget")
    cache.prune(keys=[key])


def _with_rest(steps: list[dict[str, Any]], total: float) -> list[dict[str, Any]]:
    """The recorded steps, plus the rest of the run() call (the run's own container)."""
    rest = total - sum(step["seconds"] for step in steps)
    return [
        *steps,
        {
            "step": "the run itself (its container, verify, code) and the rest",
            "seconds": round(rest, 3),
        },
    ]


def _check(result: RunResult) -> None:
    if result.status != "succeeded":
        raise RuntimeError(f"run {result.status}: {result.error} {result.stderr[-300:]!r}")


def _wait_idle(executor: Executor, timeout_s: float = 30.0) -> None:
    """The previous run's container removed (deferred past its answer) and the pool full."""
    executor.driver.close()
    pool = executor.pool
    if pool is None:
        return
    deadline = time.monotonic() + timeout_s
    while pool.idle_count() < pool.size and time.monotonic() < deadline:
        time.sleep(0.01)


def _engine_pids() -> list[int]:
    """dockerd and its containerd, from their pid files (empty where unreadable)."""
    pids = []
    for path in ("/var/run/docker.pid", "/var/run/docker/containerd/containerd.pid"):
        try:
            pids.append(int(Path(path).read_text().strip()))
        except (OSError, ValueError):
            continue
    return pids


def _machine_busy_ticks() -> int:
    """Non-idle CPU time of the whole machine so far, in clock ticks (/proc/stat)."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    return sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait


def _process_ticks(pid: int) -> int:
    """User + system CPU time of ``pid`` (all its threads) so far, in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            rest = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(rest[11]) + int(rest[12])


def _sample_rss(daemon: Daemon, stop: threading.Event, peaks: dict[str, int], name: str) -> None:
    while not stop.is_set():
        rss = vm_rss(daemon.pid)
        if rss is not None and rss > peaks.get(name, 0):
            peaks[name] = rss
        stop.wait(0.05)


def _hammer(run: Callable[[], str], clients: int, per_client: int) -> tuple[int, int, float]:
    """``clients`` threads, each making ``per_client`` runs; (completed, errors, wall s)."""
    barrier = threading.Barrier(clients + 1)
    done = [0] * clients
    errors = [0] * clients

    def worker(index: int) -> None:
        barrier.wait()
        for _ in range(per_client):
            try:
                if "hello" in run():
                    done[index] += 1
                else:
                    errors[index] += 1
            except Exception:
                errors[index] += 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return sum(done), sum(errors), time.perf_counter() - started


# -- ratios, targets, table -----------------------------------------------------------------
def evaluate(results: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every figure over its floor, and the targets (met / not met / n/a)."""
    hello = results.get("hello_world", {})
    floor = hello.get("floor", {})
    ratios: dict[str, Any] = {}
    f50, f95 = floor.get("p50"), floor.get("p95")
    for name, entry in hello.items():
        if entry.get("n") and f50 and f95:
            ratios[f"hello_world.{name}"] = {
                "p50": round(entry["p50"] / f50, 3),
                "p95": round(entry["p95"] / f95, 3),
            }
    pandas = results.get("pandas", {})
    for name, entry in pandas.items():
        value = entry.get("p50", entry.get("seconds")) if isinstance(entry, dict) else None
        if value and f50:
            ratios[f"pandas.{name}"] = round(value / f50, 2)
    tput = results.get("throughput", {})
    floor_rate = tput.get("floor", {}).get("runs_per_s")
    for name, entry in tput.items():
        if floor_rate:
            ratios[f"throughput.{name}"] = round(entry["runs_per_s"] / floor_rate, 3)
    # Against the floor created as sandboxes are (no network setup): like for like.
    lean = hello.get("diag_floor_lean", {}).get("p50")
    lean_rate = tput.get("diag_floor_lean", {}).get("runs_per_s")
    for name in ("library_fresh", "http_fresh"):
        p50 = hello.get(name, {}).get("p50")
        if p50 and lean:
            ratios[f"hello_world_vs_lean.{name}"] = round(p50 / lean, 3)
        rate = tput.get(name, {}).get("runs_per_s")
        if rate and lean_rate:
            ratios[f"throughput_vs_lean.{name}"] = round(rate / lean_rate, 3)
    floor_rss = results.get("rss_floor_controller_bytes")
    for kind in ("rss_idle_bytes", "rss_peak_bytes"):
        for name, value in (results.get(kind) or {}).items():
            if value and floor_rss:
                ratios[f"{kind}.{name}"] = round(value / floor_rss, 2)

    targets: list[dict[str, Any]] = []

    def target(name: str, value: float | None, limit: float, at_most: bool = True) -> None:
        if value is None:
            targets.append({"target": name, "value": None, "limit": limit, "status": "n/a"})
            return
        met = value <= limit if at_most else value >= limit
        targets.append(
            {
                "target": name,
                "value": round(value, 3),
                "limit": limit,
                "status": "met" if met else "not met",
            }
        )

    def ratio(key: str, part: str = "p50") -> float | None:
        value = ratios.get(key)
        return value.get(part) if isinstance(value, dict) else value

    target(
        "library fresh-container hello p50 <= 1.0x floor", ratio("hello_world.library_fresh"), 1.0
    )
    target("HTTP fresh-container hello p50 <= 1.1x floor", ratio("hello_world.http_fresh"), 1.1)
    target("library warm-pool hello p50 <= 0.1x floor", ratio("hello_world.library_pool"), 0.1)
    target("HTTP warm-pool hello p50 <= 0.15x floor", ratio("hello_world.http_pool"), 0.15)
    clients = results.get("meta", {}).get("config", {}).get("clients", 4)
    for name, limit in (("library_fresh", 0.9), ("http_fresh", 0.8)):
        target(
            f"throughput at {clients} clients, {LABELS[name]} >= {limit}x floor",
            ratios.get(f"throughput.{name}"),
            limit,
            at_most=False,
        )
    for name, limit in (("library_fresh", 1.0), ("http_fresh", 1.1)):
        target(
            f"{LABELS[name]} hello p50 <= {limit}x the lean floor",
            ratios.get(f"hello_world_vs_lean.{name}"),
            limit,
        )
        target(
            f"throughput at {clients} clients, {LABELS[name]} >= 0.85x the lean floor",
            ratios.get(f"throughput_vs_lean.{name}"),
            0.85,
            at_most=False,
        )
    per_run = pandas.get("per_run", {}).get("p50")
    cold = pandas.get("cold", {}).get("seconds")
    hit = pandas.get("cache_hit", {}).get("p50")
    target(
        "pandas first run <= 0.6x per-run pip install",
        cold / per_run if cold and per_run else None,
        0.6,
    )
    target(
        "pandas cache hit p50 <= 0.1x per-run pip install",
        hit / per_run if hit and per_run else None,
        0.1,
    )
    second = pandas.get("cache_hit", {}).get("second_run")
    target(
        "pandas: the run right after a cold install <= 1.3x the compiled cache hit",
        second / hit if second and hit else None,
        1.3,
    )
    prewarmed = pandas.get("prewarmed") or {}
    target(
        "prewarmed pandas: the first run is a cache hit (1 = yes)",
        float(bool(prewarmed.get("cache_hit"))) if prewarmed else None,
        1.0,
        at_most=False,
    )
    sessions = results.get("sessions") or {}
    start = (sessions.get("start") or {}).get("library_pool", {}).get("p50")
    target("session start from the warm pool p50 <= 0.5 s", start, 0.5)
    cell = (sessions.get("cell") or {}).get("http", {}).get("p50")
    target("cell round trip over HTTP (1 + 1) p50 <= 0.020 s", cell, 0.020)
    for name, value, most in checkpoint_bench.targets(results.get("checkpoints") or {}):
        target(name, value, most)
    for name, value, most in preimport_bench.targets(results.get("preimport") or {}):
        target(name, value, most)
    for name, value in (results.get("rss_idle_bytes") or {}).items():
        target(f"idle controller RSS ({name} daemon) <= 80 MB", value / MB if value else None, 80)
    dataset_targets(results.get("datasets") or {}, target)
    # What the experiments would give (not the product's configuration).
    count = len(targets)
    target(
        f"{LABELS['exp_http_workers']}: throughput >= 0.9x floor",
        ratios.get("throughput.exp_http_workers"),
        0.9,
        at_most=False,
    )
    for item in targets[count:]:
        item["experiment"] = True
    return ratios, targets


def dataset_targets(found: dict[str, Any], target: Callable[..., None]) -> None:
    """The datasets' targets: upload throughput and memory, start with a mount, describe."""
    upload = found.get("upload") or {}
    ratio = upload.get("throughput_vs_cp")
    target("dataset upload (2 GiB) throughput >= 0.5x cp", ratio, 0.5, at_most=False)
    peak = upload.get("daemon_peak_rss_bytes")
    target("daemon RSS during the upload <= 150 MB", peak / MB if peak else None, 150)
    for key, label in (("start_fresh", "fresh"), ("start_pool", "warm pool")):
        delta = (found.get(key) or {}).get("delta_p50_s")
        target(f"run start with a 2 GiB dataset, {label}: p50 <= +0.050 s", delta, 0.05)
    seconds = (found.get("describe") or {}).get("seconds")
    target("describe of a 1 GiB CSV <= 10 s", seconds, 10.0)


def render(results: dict[str, Any]) -> str:
    """The table: every figure with its ratio to the floor of the same run."""
    ratios = results.get("ratios", {})
    lines: list[str] = []
    meta = results.get("meta", {})
    lines.append(
        f"ai-data-agent benchmark, {meta.get('date')}: {meta.get('nproc')} CPUs "
        f"({meta.get('cpu')}), {meta.get('memory_gib')} GiB, kernel {meta.get('kernel')}, "
        f"Docker {meta.get('docker_server')}, image {meta.get('sandbox_image')}"
    )
    lines.append("")
    row = "{:<52} {:>10} {:>10} {:>5} {:>16}"
    lines.append(row.format("hello world latency (s)", "p50", "p95", "n", "x floor p50/p95"))
    for name, entry in results.get("hello_world", {}).items():
        r = ratios.get(f"hello_world.{name}")
        label = LABELS.get(name, name)
        if entry.get("pool_hits"):
            label += f" [pool: {entry['pool_hits']}]"
        if entry.get("http_overhead_p50") is not None:
            label += f" [HTTP +{entry['http_overhead_p50'] * 1000:.0f} ms]"
        if not entry.get("n"):
            lines.append(row.format(label[:52], "n/a", "n/a", 0, "n/a"))
            continue
        lines.append(
            row.format(
                label[:52],
                f"{entry['p50']:.3f}",
                f"{entry['p95']:.3f}",
                entry["n"],
                f"{r['p50']:.2f} / {r['p95']:.2f}" if r else "",
            )
        )
    if "http_pool" not in results.get("hello_world", {}):
        lines.append(row.format("HTTP, warm pool", "n/a", "n/a", 0, "n/a"))
    for mode, entry in (results.get("peers") or {}).items():
        if not isinstance(entry, dict):
            continue
        f50 = results["hello_world"]["floor"].get("p50")
        if entry.get("n"):
            lines.append(
                row.format(
                    f"llm-sandbox ({mode}) session",
                    f"{entry['p50']:.3f}",
                    f"{entry['p95']:.3f}",
                    entry["n"],
                    f"{entry['p50'] / f50:.1f} / -" if f50 else "",
                )
            )
        else:
            reason = entry.get("error") or entry.get("skipped") or "n/a"
            lines.append(f"llm-sandbox ({mode}): {reason}")
    pandas = results.get("pandas")
    if pandas:
        lines.append("")
        lines.append(
            row.format(
                "pandas script, wall time of run() (s)", "p50/once", "p95", "n", "x floor p50"
            )
        )
        names = [
            ("cold", "first run, cold install (no uv download cache)"),
            ("miss_warm_uv_cache", "first run, miss with uv download cache warm"),
            ("cache_hit", "cache hit (runs 2..n+1)"),
            ("preinstalled", "pandas preinstalled in the image"),
            ("per_run", "per-run pip install (install_mode=per_run)"),
        ]
        floor_p50 = results.get("hello_world", {}).get("floor", {}).get("p50")
        for key, label in names:
            entry = pandas.get(key) or {}
            value = entry.get("p50", entry.get("seconds"))
            if value is None:
                lines.append(row.format(label, "n/a", "", 0, ""))
                continue
            r = ratios.get(f"pandas.{key}") or (value / floor_p50 if floor_p50 else None)
            lines.append(
                row.format(
                    label,
                    f"{value:.3f}",
                    f"{entry['p95']:.3f}" if "p95" in entry else "",
                    entry.get("n", 1),
                    f"{r:.1f}" if r else "",
                )
            )
    hits = (pandas or {}).get("cache_hit") or {}
    for key, label in (
        ("second_run", "second run (the rest of the bytecode may still compile)"),
        ("third_run", "third run"),
    ):
        if hits.get(key) is not None:
            lines.append(row.format(label, f"{hits[key]:.3f}", "", 1, ""))
    prewarmed = (pandas or {}).get("prewarmed") or {}
    if prewarmed:
        lines.append(
            f"  prewarmed daemon: pandas ready {prewarmed.get('prewarm_s')} s after start; its first "
            f"run {prewarmed.get('first_run_s')} s, cache hit: {prewarmed.get('cache_hit')}"
        )
    for key, title in (("cold", "cold first run"), ("miss_warm_uv_cache", "miss, uv cache warm")):
        steps = ((pandas or {}).get(key) or {}).get("steps")
        if not steps:
            continue
        lines.append(f"  where the {title} goes:")
        for step in steps:
            extra = f" ({'; '.join(step['log'])})" if step.get("log") else ""
            lines.append(f"    {step['seconds']:7.3f} s  {step['step']}{extra}")
    tput = results.get("throughput")
    if tput:
        lines.append("")
        clients = meta.get("config", {}).get("clients", 4)
        # CPU seconds per completed run: the whole machine, the controller
        # process, and dockerd + containerd.
        wide = "{:<52} {:>10} {:>10} {:>5} {:>16} {:>12} {:>9} {:>9}"
        lines.append(
            wide.format(
                f"throughput, {clients} concurrent clients",
                "runs/s",
                "errors",
                "runs",
                "x floor",
                "CPU s/run:",
                "ctl",
                "engine",
            )
        )
        for name, entry in tput.items():
            r = ratios.get(f"throughput.{name}")
            lines.append(
                wide.format(
                    LABELS.get(name, name),
                    f"{entry['runs_per_s']:.2f}",
                    entry["errors"],
                    entry["runs"],
                    f"{r:.2f}" if r else "",
                    f"{entry['machine_cpu_s_per_run']:.3f}",
                    f"{entry['controller_cpu_s_per_run']:.3f}",
                    f"{entry['engine_cpu_s_per_run']:.3f}"
                    if entry.get("engine_cpu_s_per_run")
                    else "",
                )
            )
    lines.append("")
    lines.append(row.format("controller RSS (MB)", "MB", "", "", "x floor ctl"))
    floor_rss = results.get("rss_floor_controller_bytes")
    if floor_rss:
        lines.append(
            row.format(
                "floor controller (python + docker-py, one run)",
                f"{floor_rss / MB:.1f}",
                "",
                "",
                "1.00",
            )
        )
    daemons = {"http_fresh": "fresh", "http_pool": "warm pool", "exp_http_workers": "4 workers"}
    for kind, label in (
        ("rss_idle_bytes", "idle after start + one run"),
        ("rss_peak_bytes", "peak under the throughput load"),
    ):
        for name, value in (results.get(kind) or {}).items():
            r = ratios.get(f"{kind}.{name}")
            lines.append(
                row.format(
                    f"daemon ({daemons.get(name, name)}), {label}"[:52],
                    f"{value / MB:.1f}" if value else "n/a",
                    "",
                    "",
                    f"{r:.2f}" if r else "",
                )
            )
    lines += render_sessions(results.get("sessions"))
    lines += checkpoint_bench.render(results.get("checkpoints"))
    lines += preimport_bench.render(results.get("preimport"))
    lines.append("")
    lines.append("targets, as ratios (RSS in MB)")
    for t in results.get("targets", []):
        value = "n/a" if t["value"] is None else f"{t['value']:.3f}"
        lines.append(f"  [{t['status']:>7}] {t['target']}: {value}")
    phases = results.get("phases") or {}
    for name, rows in phases.items():
        lines.append("")
        lines.append(f"where the time goes: {name} (median ms, share of the run() call)")
        for item in rows:
            share = f"{item['share'] * 100:5.1f}%" if item.get("share") is not None else ""
            lines.append(f"  {item['phase']:<52} {item['median_ms']:>8.1f} {share}")
    lines.extend(dataset_bench.render(results.get("datasets")))
    lines.extend(cluster_bench.render(results.get("cluster")))
    for text in results.get("notes", []):
        lines.append(f"note: {text}")
    return "\n".join(lines)


def render_sessions(sessions: dict[str, Any] | None) -> list[str]:
    if not sessions:
        return []
    row = "{:<52} {:>10} {:>10} {:>5}"
    lines = ["", row.format("sessions (s)", "p50", "p95", "n")]
    labels = {
        "library_fresh": "session start, library, fresh container",
        "library_pool": "session start, library, warm pool",
        "http_pool": "session start, HTTP, warm pool",
    }
    for key, entry in (sessions.get("start") or {}).items():
        lines.append(
            row.format(labels.get(key, key), entry.get("p50"), entry.get("p95"), entry.get("n"))
        )
    for key, entry in (sessions.get("cell") or {}).items():
        lines.append(
            row.format(
                f"cell round trip (1 + 1), {key}",
                entry.get("p50"),
                entry.get("p95"),
                entry.get("n"),
            )
        )
    analysis = sessions.get("analysis") or {}
    if "ratio" in analysis:
        lines.append(
            f"10-step analysis of sales.csv: session {analysis['session_s']} s, one-shot runs "
            f"{analysis['one_shot_runs_s']} s, ratio {analysis['ratio']} "
            f"(all succeeded: {analysis['all_succeeded']})"
        )
    elif analysis:
        lines.append(f"10-step analysis: {analysis.get('error')}")
    return lines


def main() -> int:
    cfg = Config.from_env()
    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("BENCH_LOG_LEVEL", "WARNING"))
    bench = Bench(cfg)
    try:
        results = bench.run()
    finally:
        bench.close()
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    cfg.out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(render(results))
    log(f"wrote {cfg.out} in {results['meta']['duration_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
