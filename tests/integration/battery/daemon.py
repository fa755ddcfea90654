"""The real daemon (``python -m ai_data_agent.service``) as a subprocess, for the battery and chaos.

    daemon = Daemon.start(tmp_path, max_concurrent_runs=2)
    response = daemon.client().post("/v1/runs", json={"code": "print(1)"})
    daemon.kill()            # SIGKILL, this pid only
    daemon = daemon.restart()

Settings go in as ``AI_DATA_AGENT_*`` variables of the child only; nothing of
the test's own environment under that prefix leaks in.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .conftest import BATTERY_SETTINGS, ca_bundle

TOKEN = "battery-token-" + os.urandom(8).hex()
TERMINAL = {
    "succeeded", "failed", "timed_out", "memory_exceeded", "install_failed", "output_exceeded",
    "cancelled", "interrupted", "error",
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path
    settings: dict[str, Any]
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(
        cls, data_dir: Path, *, extra_env: dict[str, str] | None = None, port: int | None = None,
        **settings: Any,
    ) -> Daemon:  # fmt: skip
        values: dict[str, Any] = {**BATTERY_SETTINGS, "ca_bundle": ca_bundle(), **settings}
        env = {k: v for k, v in os.environ.items() if not k.startswith("AI_DATA_AGENT_")}
        for name, value in {**values, "data_dir": data_dir, "api_tokens": TOKEN}.items():
            if value is not None:
                env[f"AI_DATA_AGENT_{name.upper()}"] = str(value)
        env.update(extra_env or {})
        port = port or free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        log_path = data_dir / f"daemon-{port}-{int(time.time() * 1000)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "ai_data_agent.service", "--host", "127.0.0.1",
                 "--port", str(port)],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        daemon = cls(process, port, data_dir, log_path, settings, dict(extra_env or {}))
        daemon.wait_ready()
        return daemon

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, token: str | None = TOKEN, timeout: float = 60) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return "(no log)"

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the daemon exited ({self.process.returncode}):\n{self.log()}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the daemon was not ready in {timeout_s} s:\n{self.log()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL to this daemon's pid only."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> Daemon:
        """A new daemon on the same port and data directory (after `kill` or `stop`)."""
        return Daemon.start(
            self.data_dir, extra_env=self.extra_env, port=self.port, **self.settings
        )

    def record(self, run_id: str) -> dict[str, Any]:
        with self.client() as client:
            response = client.get(f"/v1/runs/{run_id}")
        response.raise_for_status()
        record: dict[str, Any] = response.json()
        return record

    def wait_terminal(self, run_id: str, timeout_s: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            record = self.record(run_id)
            if record["status"] in TERMINAL:
                return record
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} still {record['status']}:\n{self.log()}")
            time.sleep(0.2)
