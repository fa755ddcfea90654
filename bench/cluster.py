"""The cluster section of ``make bench``: PostgreSQL store and queue against one SQLite node.

    section = measure(tmp_dir, image)        # dict for results.json ("cluster")
    print("\\n".join(render(section)))

Everything runs on this machine: a throwaway PostgreSQL (fsync on, as in
production; `tests/cluster/postgres.py` makes it), a cluster API node, and one
or two workers on the same Docker engine, beside a one-node daemon with
SQLite. Measured, with samples interleaved so that other load falls on all
alike:

- admission: ``POST /v1/runs`` with ``wait=false`` until the 202 (the record
  and, for the cluster, the cluster-wide bound, in one transaction);
- hello world with ``wait=true``: what a client sees end to end; the cluster's
  extra is the NOTIFY to a worker, its claim, events and the terminal write
  through the database, and the API node's wake-up;
- throughput: runs/s with ``BENCH_CLIENTS`` concurrent clients, for the one
  node (``max_concurrent_runs`` 2) and the cluster with one and two workers of
  2 slots each. On one 2-core machine two workers share the cores and the
  engine: the figure shows the cost of the cluster path, not the capacity of
  two machines (capacity planning in docs/scale-out.md).

Knobs: BENCH_CLUSTER_N (latency samples per variant, 20), BENCH_CLUSTER_RUNS
(runs per client in a throughput block, 10), BENCH_CLIENTS (4).
"""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.cluster.postgres import Postgres, free_port
from tests.support.daemon import Daemon

__all__ = ["measure", "render"]

HELLO = "print('hello')"
CLI = ["-c", "from ai_data_agent.cli import main; main()"]


@dataclass
class _Node:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()


class _Cluster:
    def __init__(self, root: Path, image: str, token: str) -> None:
        self.root = root
        # Its own short path (a unix socket lives there) that the postgres user may enter.
        self.pg = Postgres.create(Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp")), durable=True)
        self.token = token
        self.image = image
        self.nodes: list[_Node] = []

    def _env(self, role: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AI_DATA_AGENT_")}
        env.update(
            AI_DATA_AGENT_DATABASE_URL=self.pg.url(role),
            AI_DATA_AGENT_DATABASE_SSLMODE="verify-full",
            AI_DATA_AGENT_DATABASE_SSLROOTCERT=str(self.pg.ca),
            AI_DATA_AGENT_API_TOKENS=self.token,
            AI_DATA_AGENT_SANDBOX_IMAGE=self.image,
            AI_DATA_AGENT_PULL_MISSING_IMAGE="false",
            AI_DATA_AGENT_MAX_CONCURRENT_RUNS="2",
            AI_DATA_AGENT_MAX_QUEUED_RUNS="200",
            AI_DATA_AGENT_POOL_SIZE="0",
            LOG_LEVEL="WARNING",
            **extra,
        )
        return env

    def start(self, command: str, role: str, name: str) -> _Node:
        port = free_port()
        data = self.root / name
        data.mkdir(parents=True, exist_ok=True)
        env = self._env(role, AI_DATA_AGENT_DATA_DIR=str(data), AI_DATA_AGENT_WORKER_NAME=name)
        log = data / "log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, *CLI, command, "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        node = _Node(process, f"http://127.0.0.1:{port}", log)
        self.nodes.append(node)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(node.url + "/readyz", timeout=2).status_code == 200:
                    return node
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)

    def close(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        self.pg.destroy()


def _post(client: httpx.Client, wait: bool) -> float:
    started = time.perf_counter()
    answer = client.post("/v1/runs", json={"code": HELLO, "wait": wait})
    elapsed = time.perf_counter() - started
    if answer.status_code != (200 if wait else 202):
        raise RuntimeError(f"HTTP {answer.status_code}: {answer.text[:300]}")
    if wait and answer.json()["stdout"] != "hello\n":
        raise RuntimeError(f"unexpected result: {answer.text[:300]}")
    return elapsed


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 4),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 4),
        "n": len(ordered),
    }


def _latency(clients: dict[str, httpx.Client], n: int, wait: bool) -> dict[str, Any]:
    samples: dict[str, list[float]] = {name: [] for name in clients}
    for number in range(n + 2):  # two rounds of warm-up, then interleaved samples
        for name, client in clients.items():
            elapsed = _post(client, wait)
            if number >= 2:
                samples[name].append(elapsed)
        if not wait:
            time.sleep(1.0)  # let the queued hello worlds drain between rounds
    return {name: _stats(values) for name, values in samples.items()}


def _throughput(url: str, token: str, clients: int, runs: int) -> dict[str, Any]:
    def one_client(_: int) -> int:
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=300
        ) as client:
            for _ in range(runs):
                _post(client, wait=True)
        return runs

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = sum(pool.map(one_client, range(clients)))
    elapsed = time.perf_counter() - started
    return {"runs": done, "seconds": round(elapsed, 2), "runs_per_s": round(done / elapsed, 2)}


def _blocks(
    cluster: _Cluster, single: str, api: str, token: str, clients: int, runs: int
) -> dict[str, Any]:
    """Throughput blocks in A B C C B A order (a second worker only for C), summed."""
    urls = {"sqlite_one_node": single, "postgres_1_worker": api, "postgres_2_workers": api}
    order = [*urls, *reversed(urls)]
    done: dict[str, list[float]] = {name: [0.0, 0.0] for name in urls}
    second: _Node | None = None
    for name in order:
        if name == "postgres_2_workers" and second is None:
            second = cluster.start("worker", "worker", "worker-2")
        if name != "postgres_2_workers" and second is not None:
            second.stop()
            cluster.nodes.remove(second)
            second = None
        block = _throughput(urls[name], token, clients, runs)
        done[name][0] += block["runs"]
        done[name][1] += block["seconds"]
    return {
        name: {"runs": int(n), "seconds": round(t, 2), "runs_per_s": round(n / t, 2)}
        for name, (n, t) in done.items()
    }


def measure(tmp: Path, image: str) -> dict[str, Any]:
    n = int(os.environ.get("BENCH_CLUSTER_N") or 20)
    runs = int(os.environ.get("BENCH_CLUSTER_RUNS") or 10)
    concurrency = int(os.environ.get("BENCH_CLIENTS") or 4)
    tmp.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(16)
    cluster = _Cluster(tmp / "cluster", image, token)
    out: dict[str, Any] = {}
    single = Daemon.start(
        tmp / "sqlite",
        {
            "sandbox_image": image,
            "pull_missing_image": False,
            "max_concurrent_runs": 2,
            "max_queued_runs": 200,
            "log_level": "WARNING",
        },
        token=token,
    )
    try:
        api = cluster.start("serve", "api", "api")
        cluster.start("worker", "worker", "worker-1")
        headers = {"Authorization": f"Bearer {token}"}
        clients = {
            "sqlite": httpx.Client(base_url=single.url, headers=headers, timeout=120),
            "postgres": httpx.Client(base_url=api.url, headers=headers, timeout=120),
        }
        try:
            out["admission_s"] = _latency(clients, n, wait=False)
            out["hello_wait_s"] = _latency(clients, n, wait=True)
        finally:
            for client in clients.values():
                client.close()
        out["throughput"] = _blocks(cluster, single.url, api.url, token, concurrency, runs)
        out["clients"] = concurrency
        out["cpus"] = os.cpu_count()
    finally:
        single.stop()
        cluster.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def render(section: dict[str, Any] | None) -> list[str]:
    if not section:
        return []
    lines = ["", f"cluster: PostgreSQL store and queue vs one SQLite node ({section['cpus']} CPUs)"]
    row = "  {:<44} {:>10} {:>10}"
    lines.append(row.format("latency (s)", "p50", "p95"))
    kinds = (
        ("admission_s", "POST wait=false (admission)"),
        ("hello_wait_s", "POST wait=true hello world"),
    )
    for kind, label in kinds:
        for name, stats in section[kind].items():
            lines.append(row.format(f"{label}, {name}", stats["p50"], stats["p95"]))
    lines.append(row.format(f"throughput, {section['clients']} clients", "runs/s", "runs"))
    for name, entry in section["throughput"].items():
        lines.append(row.format(name, entry["runs_per_s"], entry["runs"]))
    return lines
