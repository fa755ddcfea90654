"""The benchmark of issue 5: ai-data-agent against the raw Docker floor, in one run.

    .venv/bin/python -m bench.run            # or `python bench/run.py`, or `make bench`
    BENCH_N=40 BENCH_PEERS=1 .venv/bin/python -m bench.run

Prints a table and writes ``bench/results.json`` (``BENCH_OUT``): hello-world
latency (p50/p95) of the raw Docker floor (`bench.floor`), of ai-data-agent
with a fresh container and with the warm pool, each through the library and
through the HTTP daemon (a subprocess on loopback); a pandas script on its
first run (cold install, and with uv's download cache warm), on later runs
(cache hit), on an image with pandas preinstalled, and with the seed's per-run
pip install; throughput at 4 concurrent clients; the daemon's RSS idle and
under load; where the time of a run goes (`bench.profile`); optionally
llm-sandbox (``BENCH_PEERS=1``). Every figure is also a ratio to the floor
measured in this same run, and the targets of issue 5 are evaluated.

Samples of the variants are interleaved round by round (and throughput blocks
run in A..Z Z..A A..Z Z..A order), so load from other work on the machine falls
on all of them alike. Before every timed pooled sample the pool is refilled
first: pool figures are those of a server between requests, not of one
refilling. Experiments (`bench.experiments`, proposed executor changes tried
from outside src/) are measured alongside and labelled as such.

Knobs (environment): BENCH_N (hello-world samples per variant, 20),
BENCH_WARMUP (2), BENCH_POOL_SIZE (2), BENCH_PANDAS_N (5), BENCH_PER_RUN_N (3),
BENCH_CLIENTS (4), BENCH_TPUT_RUNS (runs per client, 12), BENCH_TPUT_BLOCKS (4),
BENCH_PROFILE_N (8), BENCH_EXPERIMENTS (1), BENCH_PEERS (0), BENCH_PEER_N (3),
BENCH_PEER_PYTHON (/tmp/peer-venv/bin/python), BENCH_SKIP (comma list of: http,
pandas, throughput, profile, cluster), BENCH_OUT, BENCH_LOG_LEVEL (WARNING); the
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
    from loguru import logger

    from ai_data_agent.executor import Executor
    from ai_data_agent.executor.docker_backend import DockerBackend
    from ai_data_agent.models import RunRequest, RunResult
    from ai_data_agent.settings import Settings
except ImportError as exc:  # pragma: no cover - a usage error, not a code path
    sys.exit(f"bench: {exc}; run it with the project's venv: .venv/bin/python -m bench.run")

from bench import cluster as cluster_bench
from bench.daemon import DaemonError, DaemonProcess
from bench.experiments import DeferredRemoval, LeanRunner, NoCompileAtInstall, StdinRunner
from bench.floor import CA_BUNDLE, HELLO, Floor
from bench.profile import InstallSteps, PhaseProfiler, summarise

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
    "exp_fresh_stdin": "experiment: fresh, runner via stdin",
    "exp_fresh_all": "experiment: fresh, stdin + lean + deferred rm",
    "exp_pool_deferred": "experiment: warm pool, deferred rm",
    "exp_pool_all": "experiment: warm pool, stdin + lean + deferred rm",
    "exp_http_workers": "experiment: HTTP, fresh, workers = clients",
    "diag_floor_mounts": "diagnostic: floor + the sandbox's 2 mounts",
}
# name: (warm pool, StdinRunner, LeanRunner, DeferredRemoval), see bench.experiments.
EXPERIMENTS = {
    "exp_fresh_stdin": (False, True, False, False),
    "exp_fresh_all": (False, True, True, True),
    "exp_pool_deferred": (True, False, False, True),
    "exp_pool_all": (True, True, True, True),
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

        ca = env.get("AI_DATA_AGENT_CA_BUNDLE") or "/etc/ssl/certs/ca-certificates.crt"
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
            ca_bundle=Path(ca) if Path(ca).is_file() else None,
        )


@dataclass
class Sampler:
    """One variant: how to run one hello world, and what came of it."""

    name: str
    run: Callable[[], str]  # returns stdout; raises on failure
    before: Callable[[], None] = lambda: None  # untimed: e.g. wait for the pool to refill
    after: Callable[[], None] = lambda: None  # untimed: e.g. check that the pool was used
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
        self.daemons: dict[str, DaemonProcess] = {}
        self.executors: dict[str, Executor] = {}
        self.deferred: list[DeferredRemoval] = []

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

        before = (lambda: _wait_idle(executor)) if executor.pool is not None else (lambda: None)
        return Sampler(name, run, before)

    def _http_sampler(self, name: str, daemon: DaemonProcess) -> Sampler:
        # Pool hits are checked (a pooled container gone after the run) while
        # latency is sampled, not under the throughput load.
        state: dict[str, Any] = {
            "before": set[str](), "hits": 0, "samples": 0, "check": True, "overhead": []
        }  # fmt: skip

        def before() -> None:
            if daemon.pool_size:
                if daemon.controller_id is None:
                    time.sleep(1.0)
                else:
                    daemon.wait_pool_full(self.api)
                    state["before"] = daemon.pool_ids(self.api)

        def run() -> str:
            started = time.perf_counter()
            result = daemon.client.run(HELLO)
            _check(result)
            if state["check"]:
                # The client's wall time beyond the executor's own total_s: HTTP,
                # the run store, the queue and the worker hand-offs.
                state["overhead"].append(time.perf_counter() - started - result.timings.total_s)
            return result.stdout

        def after() -> None:
            if state["check"] and daemon.pool_size and daemon.controller_id is not None:
                state["samples"] += 1
                if state["before"] - daemon.pool_ids(self.api):
                    state["hits"] += 1

        sampler = Sampler(name, run, before, after)
        sampler.pool_state = state  # type: ignore[attr-defined]
        return sampler

    def start_daemons(self) -> None:
        daemons: list[tuple[str, int, dict[str, str]]] = [
            ("http_fresh", 0, {}),
            ("http_pool", self.cfg.pool_size, {}),
        ]
        if self.cfg.experiments and "throughput" not in self.cfg.skip:
            # The default worker count is the CPU count (2 here): with 4 clients,
            # half the runs queue. Throughput only.
            workers = str(self.cfg.clients)
            daemons.append(("exp_http_workers", 0, {"AI_DATA_AGENT_MAX_CONCURRENT_RUNS": workers}))
        for name, size, extra in daemons:
            daemon = DaemonProcess(self.tmp / name, pool_size=size, extra_env=extra)
            try:
                daemon.start()
            except DaemonError as exc:
                self.note(f"{name}: daemon did not start: {exc}")
                continue
            self.stack.callback(daemon.stop)
            self.daemons[name] = daemon
            if size and daemon.controller_id is None:
                self.note(f"{name}: no controller id in the daemon log; pool hits not verified")
            elif size and not daemon.wait_pool_full(self.api, timeout_s=30):
                self.note(
                    f"{name}: the daemon's pool did not fill in 30 s: warm pool n/a over HTTP"
                )
                daemon.stop()
                del self.daemons[name]

    def hello_latency(self) -> dict[str, Sampler]:
        samplers = {"floor": Sampler("floor", lambda: self.floor.run_once()[1])}
        samplers["library_fresh"] = self._library_sampler(
            "library_fresh", self.executor("library_fresh")
        )
        pooled = self.executor("library_pool", pool_size=self.cfg.pool_size)
        pooled.start_pool()
        samplers["library_pool"] = self._library_sampler("library_pool", pooled)
        for name, daemon in self.daemons.items():
            if name in VARIANTS:
                samplers[name] = self._http_sampler(name, daemon)
        if self.cfg.experiments:
            for name, (pool, stdin, lean, defer) in EXPERIMENTS.items():
                executor = self.executor(name, pool_size=self.cfg.pool_size if pool else 0)
                # All of them before the pool starts its containers. The last
                # wrapper runs first: LeanRunner rewrites the command, then
                # StdinRunner ships that (lean) source over stdin.
                if stdin:
                    StdinRunner(executor)
                if lean:
                    LeanRunner(executor)
                if defer:
                    self.deferred.append(DeferredRemoval(executor))
                executor.start_pool()
                samplers[name] = self._library_sampler(name, executor)
        order = [v for v in [*VARIANTS, *EXPERIMENTS] if v in samplers]
        rounds = self.cfg.warmup + self.cfg.n
        taken_before = pooled.pool.taken if pooled.pool else 0
        for i in range(rounds):
            if i % 5 == 0:
                log(f"hello world: round {i + 1}/{rounds}")
            shift = i % len(order)
            for name in order[shift:] + order[:shift]:
                samplers[name].sample(record=i >= self.cfg.warmup)
                for deferred in self.deferred:  # its removals must not overlap the next sample
                    deferred.drain()
        if pooled.pool is not None:
            self.results["library_pool_taken"] = pooled.pool.taken - taken_before
            self.results["library_pool_missed"] = pooled.pool.missed
        return samplers

    # -- throughput -------------------------------------------------------------------
    def throughput(self, samplers: dict[str, Sampler]) -> dict[str, Any]:
        clients = self.cfg.clients
        blocks = self.cfg.tput_blocks
        per_block = max(1, self.cfg.tput_runs // blocks)
        extra = ["exp_http_workers", "diag_floor_mounts"]
        order = [v for v in [*VARIANTS, *EXPERIMENTS, *extra] if v in samplers]
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
                controller_pid = daemon.proc.pid if daemon and daemon.proc else os.getpid()
                engine = _engine_pids()
                cpu_before = (
                    _machine_busy_ticks(),
                    _process_ticks(controller_pid),
                    sum(_process_ticks(pid) for pid in engine),
                )
                done, errors, wall = _hammer(sampler.run, clients, per_block)
                for deferred in self.deferred:
                    deferred.drain()
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

        # Cold: a new index (a miss), no uv download cache: everything downloads.
        log("pandas: first run, cold (fresh cache index, uv download cache off)")
        cold = self.executor(
            "pandas_cold", env_cache_index=self.tmp / "cold.sqlite3", uv_shared_cache=False
        )
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
        out["cache_hit"] = dict(summary(hits), second_run=round(hits[0], 3),
                                all_cache_hits=all(hit_flags))  # fmt: skip
        out["preinstalled"] = summary(pre) if pre else {"n": 0, "note": "image unavailable"}
        # A miss with uv's download cache warm: prime it once (untimed), then a
        # second fresh index installs from the cache.
        log("pandas: first run with uv's download cache warm (after one priming install)")
        prime = self.executor("pandas_prime", env_cache_index=self.tmp / "prime.sqlite3")
        timed(prime, request)
        warm = self.executor("pandas_warm", env_cache_index=self.tmp / "warm.sqlite3")
        steps = InstallSteps(warm)
        seconds, result = timed(warm, request)
        out["miss_warm_uv_cache"] = install_info(seconds, result)
        out["miss_warm_uv_cache"]["steps"] = _with_rest(steps.stop(), seconds)
        # The seed's per-run pip install into the sandbox dir.
        per_run = []
        for i in range(self.cfg.per_run_n):
            log(f"pandas: seed per-run pip install {i + 1}/{self.cfg.per_run_n}")
            seconds, result = timed(cold, request.model_copy(update={"install_mode": "per_run"}))
            per_run.append(seconds)
            out.setdefault("per_run_install_s", []).append(result.timings.install_s)
            retries = [line.strip()[:200] for line in result.install.log_tail.splitlines()
                       if "Retrying" in line or "timed out" in line.lower()]  # fmt: skip
            if retries:
                out.setdefault("per_run_network_retries", []).append(retries[:3])
        out["per_run"] = summary(per_run)
        if self.cfg.experiments:
            out["experiment_no_compile"] = self._no_compile_experiment(timed)
        return out

    def _no_compile_experiment(
        self, timed: Callable[[Executor, RunRequest], tuple[float, RunResult]]
    ) -> dict[str, Any]:
        """A cold install without bytecode compilation, then hits on that environment.

        ``pandas>=0`` is a distinct spelling of the set, so the experiment gets
        its own (uncompiled) environment instead of the compiled one published
        above; it is pruned from the shared cache afterwards.
        """
        log("pandas experiment: cold install without compiling bytecode, then cache hits")
        executor = self.executor(
            "exp_no_compile", env_cache_index=self.tmp / "nocompile.sqlite3", uv_shared_cache=False
        )
        NoCompileAtInstall(executor)
        request = RunRequest(code=PANDAS_CODE, requirements=["pandas>=0"])
        steps = InstallSteps(executor)
        seconds, result = timed(executor, request)
        out: dict[str, Any] = {
            "cold_seconds": round(seconds, 3),
            "cold_install_s": result.timings.install_s,
            "steps": _with_rest(steps.stop(), seconds),
        }
        hits = [timed(executor, request)[0] for _ in range(max(2, self.cfg.pandas_n // 2))]
        out["cache_hit"] = summary(hits)
        cache = executor.env_cache
        if cache is not None:
            try:
                cache.prune(keys=[env.key for env in cache.index.all()])
            except Exception as exc:
                self.note(f"cannot prune the experiment's environment: {exc}")
        return out

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
            [sys.executable, "-m", "bench.floor", self.image], cwd=REPO, capture_output=True,
            text=True, check=False,
        )  # fmt: skip
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
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
            if made.returncode != 0 or not python.exists():
                return {"skipped": f"cannot install llm-sandbox: {made.stderr.strip()[-300:]}"}
        script = str(REPO / "bench" / "peer_llm_sandbox.py")
        out: dict[str, Any] = {}
        for mode, count, timeout in (("lean", self.cfg.peer_n, 120 * self.cfg.peer_n),
                                     ("default", 1, 180)):  # fmt: skip
            log(f"peers: llm-sandbox {mode}, {count} session(s)")
            try:
                done = subprocess.run(
                    [str(python), script, self.image, str(count), mode], capture_output=True,
                    text=True, timeout=timeout, check=False,
                )  # fmt: skip
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
                daemon.client.run(HELLO)  # "idle" means after start and one run
                if name in VARIANTS:
                    time.sleep(1.0)
                    self.results.setdefault("rss_idle_bytes", {})[name] = daemon.rss()
        samplers = self.hello_latency()
        self.results["hello_world"] = {name: dict(summary(s.seconds), errors=len(s.errors),
                                                  error_examples=s.errors[:3])
                                       for name, s in samplers.items()}  # fmt: skip
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
            if self.cfg.experiments and Path(CA_BUNDLE).is_file():
                samplers["diag_floor_mounts"] = Sampler(
                    "diag_floor_mounts", lambda: self.floor.run_once(mounts=True)[1]
                )
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


def _with_rest(steps: list[dict[str, Any]], total: float) -> list[dict[str, Any]]:
    """The recorded steps, plus the rest of the run() call (the run's own container)."""
    rest = total - sum(step["seconds"] for step in steps)
    return [*steps, {"step": "the run itself (its container, verify, code) and the rest",
                     "seconds": round(rest, 3)}]  # fmt: skip


def _check(result: RunResult) -> None:
    if result.status != "succeeded":
        raise RuntimeError(f"run {result.status}: {result.error} {result.stderr[-300:]!r}")


def _wait_idle(executor: Executor, timeout_s: float = 30.0) -> None:
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


def _sample_rss(daemon: DaemonProcess, stop: threading.Event, peaks: dict[str, int],
                name: str) -> None:  # fmt: skip
    while not stop.is_set():
        rss = daemon.rss()
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
    """Every figure over its floor, and the targets of issue 5 (met / not met / n/a)."""
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
        targets.append({"target": name, "value": round(value, 3), "limit": limit,
                        "status": "met" if met else "not met"})  # fmt: skip

    def ratio(key: str, part: str = "p50") -> float | None:
        value = ratios.get(key)
        return value.get(part) if isinstance(value, dict) else value

    target(
        "library fresh-container hello p50 <= 1.25x floor", ratio("hello_world.library_fresh"), 1.25
    )
    target("HTTP fresh-container hello p50 <= 1.25x floor", ratio("hello_world.http_fresh"), 1.25)
    target("library warm-pool hello p50 <= 0.35x floor", ratio("hello_world.library_pool"), 0.35)
    target("HTTP warm-pool hello p50 <= 0.35x floor", ratio("hello_world.http_pool"), 0.35)
    hit = pandas.get("cache_hit", {}).get("p50")
    pre = pandas.get("preinstalled", {}).get("p50")
    target(
        "pandas cache-hit p50 <= 1.5x preinstalled image", hit / pre if hit and pre else None, 1.5
    )
    cold = pandas.get("cold", {}).get("seconds")
    seed = pandas.get("per_run", {}).get("p50")
    target(
        "pandas cold first run <= 0.3x seed per-run pip install",
        cold / seed if cold and seed else None,
        0.3,
    )
    for name in ("library_fresh", "library_pool", "http_fresh", "http_pool"):
        target(f"throughput at {results.get('meta', {}).get('config', {}).get('clients', 4)} "
               f"clients, {LABELS[name]} >= 0.9x floor",
               ratios.get(f"throughput.{name}"), 0.9, at_most=False)  # fmt: skip
    for name, value in (results.get("rss_idle_bytes") or {}).items():
        target(f"idle controller RSS ({name} daemon) <= 80 MB", value / MB if value else None, 80)
    # What the proposed changes would give (bench.experiments; not the product).
    count = len(targets)
    for name, (pool, *_changes) in EXPERIMENTS.items():
        limit = 0.35 if pool else 1.25
        target(f"{LABELS[name]}: hello p50 <= {limit}x floor",
               ratio(f"hello_world.{name}"), limit)  # fmt: skip
    for name in [*EXPERIMENTS, "exp_http_workers"]:
        target(f"{LABELS[name]}: throughput >= 0.9x floor",
               ratios.get(f"throughput.{name}"), 0.9, at_most=False)  # fmt: skip
    nocompile = pandas.get("experiment_no_compile") or {}
    cold_nc = nocompile.get("cold_seconds")
    target(
        "experiment: cold first run without compiling <= 0.3x seed per-run install",
        cold_nc / seed if cold_nc and seed else None,
        0.3,
    )
    hit_nc = (nocompile.get("cache_hit") or {}).get("p50")
    target(
        "experiment: cache hit on an uncompiled env <= 1.5x preinstalled image",
        hit_nc / pre if hit_nc and pre else None,
        1.5,
    )
    for item in targets[count:]:
        item["experiment"] = True
    return ratios, targets


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
        lines.append(row.format(
            label[:52], f"{entry['p50']:.3f}", f"{entry['p95']:.3f}", entry["n"],
            f"{r['p50']:.2f} / {r['p95']:.2f}" if r else "",
        ))  # fmt: skip
    if "http_pool" not in results.get("hello_world", {}):
        lines.append(row.format("HTTP, warm pool", "n/a", "n/a", 0, "n/a"))
    for mode, entry in (results.get("peers") or {}).items():
        if not isinstance(entry, dict):
            continue
        f50 = results["hello_world"]["floor"].get("p50")
        if entry.get("n"):
            lines.append(row.format(
                f"llm-sandbox ({mode}) session", f"{entry['p50']:.3f}", f"{entry['p95']:.3f}",
                entry["n"], f"{entry['p50'] / f50:.1f} / -" if f50 else "",
            ))  # fmt: skip
        else:
            reason = entry.get("error") or entry.get("skipped") or "n/a"
            lines.append(f"llm-sandbox ({mode}): {reason}")
    pandas = results.get("pandas")
    if pandas:
        lines.append("")
        lines.append(row.format("pandas script, wall time of run() (s)", "p50/once", "p95", "n",
                                "x floor p50"))  # fmt: skip
        names = [
            ("cold", "first run, cold install (no uv download cache)"),
            ("miss_warm_uv_cache", "first run, miss with uv download cache warm"),
            ("cache_hit", "cache hit (runs 2..n+1)"),
            ("preinstalled", "pandas preinstalled in the image"),
            ("per_run", "seed per-run pip install (install_mode=per_run)"),
        ]
        nocompile = pandas.get("experiment_no_compile") or {}
        if nocompile:
            names += [("exp_nc_cold", "experiment: cold, no bytecode compile at install"),
                      ("exp_nc_hit", "experiment: cache hit on the uncompiled env")]  # fmt: skip
            pandas = dict(pandas, exp_nc_cold={"seconds": nocompile.get("cold_seconds")},
                          exp_nc_hit=nocompile.get("cache_hit") or {})  # fmt: skip
        floor_p50 = results.get("hello_world", {}).get("floor", {}).get("p50")
        for key, label in names:
            entry = pandas.get(key) or {}
            value = entry.get("p50", entry.get("seconds"))
            if value is None:
                lines.append(row.format(label, "n/a", "", 0, ""))
                continue
            r = ratios.get(f"pandas.{key}") or (value / floor_p50 if floor_p50 else None)
            lines.append(row.format(
                label, f"{value:.3f}", f"{entry['p95']:.3f}" if "p95" in entry else "",
                entry.get("n", 1), f"{r:.1f}" if r else "",
            ))  # fmt: skip
    for key, title in (("cold", "cold first run"), ("miss_warm_uv_cache", "miss, uv cache warm"),
                       ("experiment_no_compile", "experiment without compiling")):  # fmt: skip
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
        lines.append(wide.format(f"throughput, {clients} concurrent clients", "runs/s", "errors",
                                 "runs", "x floor", "CPU s/run:", "ctl", "engine"))  # fmt: skip
        for name, entry in tput.items():
            r = ratios.get(f"throughput.{name}")
            lines.append(wide.format(
                LABELS.get(name, name), f"{entry['runs_per_s']:.2f}", entry["errors"],
                entry["runs"], f"{r:.2f}" if r else "", f"{entry['machine_cpu_s_per_run']:.3f}",
                f"{entry['controller_cpu_s_per_run']:.3f}",
                f"{entry['engine_cpu_s_per_run']:.3f}" if entry.get("engine_cpu_s_per_run") else "",
            ))  # fmt: skip
    lines.append("")
    lines.append(row.format("controller RSS (MB)", "MB", "", "", "x floor ctl"))
    floor_rss = results.get("rss_floor_controller_bytes")
    if floor_rss:
        lines.append(row.format("floor controller (python + docker-py, one run)",
                                f"{floor_rss / MB:.1f}", "", "", "1.00"))  # fmt: skip
    daemons = {"http_fresh": "fresh", "http_pool": "warm pool", "exp_http_workers": "4 workers"}
    for kind, label in (("rss_idle_bytes", "idle after start + one run"),
                        ("rss_peak_bytes", "peak under the throughput load")):  # fmt: skip
        for name, value in (results.get(kind) or {}).items():
            r = ratios.get(f"{kind}.{name}")
            lines.append(row.format(f"daemon ({daemons.get(name, name)}), {label}"[:52],
                                    f"{value / MB:.1f}" if value else "n/a", "", "",
                                    f"{r:.2f}" if r else ""))  # fmt: skip
    lines.append("")
    lines.append("targets (issue 5), as ratios (RSS in MB)")
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
    lines.extend(cluster_bench.render(results.get("cluster")))
    for text in results.get("notes", []):
        lines.append(f"note: {text}")
    return "\n".join(lines)


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
