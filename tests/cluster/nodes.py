"""API nodes and workers as real processes, on one throwaway database and private engines.

    cluster = Cluster(pg, database, engines, tmp_path)
    api = cluster.api()                       # ai-data-agent serve, on a free port
    w1 = cluster.worker(engines[0])           # ai-data-agent worker, DOCKER_HOST=its engine
    api.post_run("print(1)")
    w1.kill()                                 # SIGKILL to that pid only
    cluster.close()                           # stop all, show logs, check no sandbox is left

Each node connects with its own role (api or worker) over TLS (verify-full).
A short lease (2 s, renewed every 0.5 s) keeps the failure tests quick.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.engines import PrivateEngine

from .postgres import Postgres, free_port

TOKEN = "cluster-token"
IMAGE = os.environ.get("AI_DATA_AGENT_SANDBOX_IMAGE") or "ai-data-agent/base:bookworm"
CLI = ["-c", "from ai_data_agent.cli import main; main()"]
BASE = {
    "sandbox_image": IMAGE,
    "pull_missing_image": "false",
    "api_tokens": TOKEN,
    "database_sslmode": "verify-full",
    "lease_timeout_s": "2",
    "heartbeat_interval_s": "0.5",
    "queue_poll_s": "5",
    "shutdown_grace_s": "5",
    "default_memory_mb": "256",
    "memory_reservation_mb": "64",
    "tmpfs_mb": "64",
    "max_concurrent_runs": "2",
    "max_queued_runs": "400",
    "pool_size": "0",
    "reaper_interval_s": "5",
}


def poll(check: Callable[[], Any], timeout: float, what: str, log: Callable[[], str] = str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}\n{log()}", pytrace=False)
        time.sleep(0.1)


@dataclass
class Node:
    kind: str
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    argv: list[str]
    env: dict[str, str]

    def client(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=timeout
        )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return "(no log)"

    def ready(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"{self.kind} exited ({self.process.returncode}):\n{self.log()}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout: float = 60) -> Node:
        poll(self.ready, timeout, f"{self.kind} /readyz 200", self.log)
        return self

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # SIGKILL, this pid only
            self.process.wait(10)

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self, timeout: float = 40) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    # -- the API ------------------------------------------------------------------------
    def submit(self, code: str, **body: Any) -> str:
        with self.client() as client:
            answer = client.post("/v1/runs", json={"code": code, "wait": False, **body})
        assert answer.status_code == 202, answer.text
        run_id: str = answer.json()["id"]
        return run_id

    def record(self, run_id: str) -> dict[str, Any]:
        with self.client() as client:
            answer = client.get(f"/v1/runs/{run_id}")
        assert answer.status_code == 200, answer.text
        record: dict[str, Any] = answer.json()
        return record

    def wait_terminal(self, run_id: str, timeout: float = 60) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            record = self.record(run_id)
            return None if record["status"] in ("queued", "running") else record

        found: dict[str, Any] = poll(ended, timeout, f"run {run_id} to end", self.log)
        return found


@dataclass
class Cluster:
    pg: Postgres
    database: str
    tmp: Path
    nodes: list[Node] = field(default_factory=list)
    engines: list[PrivateEngine] = field(default_factory=list)

    def _env(self, role: str, settings: dict[str, Any]) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AI_DATA_AGENT_") and k not in ("LOG_LEVEL", "LOG_FORMAT")
        }
        values = {
            **BASE,
            "database_url": self.pg.url(role, self.database),
            "database_sslrootcert": str(self.pg.ca),
            **{k: str(v) for k, v in settings.items()},
        }
        env.update({f"AI_DATA_AGENT_{k.upper()}": v for k, v in values.items()})
        env["LOG_LEVEL"] = "INFO"
        return env

    def _launch(self, kind: str, args: list[str], env: dict[str, str], port: int) -> Node:
        log_path = self.tmp / f"{kind}-{len(self.nodes)}.log"
        argv = [sys.executable, *CLI, *args, "--port", str(port)]
        with log_path.open("ab") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        node = Node(kind, process, f"http://127.0.0.1:{port}", log_path, argv, env)
        self.nodes.append(node)
        return node

    def api(
        self, *, wait: bool = True, with_worker: PrivateEngine | None = None, **settings: Any
    ) -> Node:
        """``ai-data-agent serve``; with ``with_worker``, also a worker on that engine."""
        data = self.tmp / f"api-data-{len(self.nodes)}"
        env = self._env("api", {"data_dir": data, **settings})
        args = ["serve"]
        if with_worker is not None:
            self.engines.append(with_worker)
            env["DOCKER_HOST"] = with_worker.url
            args.append("--with-worker")
        node = self._launch("api", args, env, free_port())
        return node.wait_ready() if wait else node

    def worker(self, engine: PrivateEngine, *, wait: bool = True, **settings: Any) -> Node:
        if engine not in self.engines:
            self.engines.append(engine)
        data = self.tmp / f"worker-data-{engine.name}"
        env = self._env("worker", {"data_dir": data, "worker_name": engine.name, **settings})
        env["DOCKER_HOST"] = engine.url
        node = self._launch(f"worker-{engine.name}", ["worker"], env, free_port())
        return node.wait_ready() if wait else node

    def restart(self, node: Node) -> Node:
        """The same command and settings again (on a new port for an API node)."""
        port = free_port()
        argv = [*node.argv[:-1], str(port)]
        with node.log_path.open("ab") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=node.env)
        again = Node(node.kind, process, f"http://127.0.0.1:{port}", node.log_path, argv, node.env)
        self.nodes.append(again)
        return again.wait_ready()

    def close(self) -> list[str]:
        """Stop every node, print their logs; return sandboxes left on the engines."""
        for node in reversed(self.nodes):
            node.stop()
        for node in self.nodes:
            print(f"--- {node.kind} ({node.url}) ---\n{node.log()}")
        return [cid for engine in self.engines for cid in engine.remove_sandboxes()]
