"""The real daemon as a subprocess, and polling helpers that fail with diagnostics."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from ai_data_agent.executor.spec import LABEL_CONTROLLER, LABEL_RUN_ID

TOKEN = "integration-token"
STARTUP_TIMEOUT_S = 30.0
# The daemon's log lines are useful, its access log is noise for these tests.
DAEMON_ENV = {"LOG_LEVEL": "INFO"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def poll(
    check: Callable[[], Any], *, timeout: float, what: str, diagnostics: Callable[[], str] = str
) -> Any:
    """Call ``check`` until it returns something truthy; fail with diagnostics at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}\n{diagnostics()}")
        time.sleep(0.1)


@dataclass
class DaemonProcess:
    process: subprocess.Popen[bytes]
    base_url: str
    data_dir: Path
    log_path: Path
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(base_url=self.base_url, headers=headers, timeout=60)
        self.clients.append(client)
        return client

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return "(no log)"

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"the daemon exited ({self.process.returncode}):\n{self.log()}")
            try:
                return httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        poll(ready, timeout=STARTUP_TIMEOUT_S, what="/readyz 200", diagnostics=self.log)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # SIGKILL, to this pid only
            self.process.wait(10)

    def close_clients(self) -> None:
        for client in self.clients:
            client.close()


def run_containers(client: docker.DockerClient, run_id: str) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"{LABEL_RUN_ID}={run_id}"})


def controller_containers(client: docker.DockerClient, controller: str) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"{LABEL_CONTROLLER}={controller}"})


def _env(
    settings_kwargs: dict[str, Any], data_dir: Path, overrides: dict[str, Any]
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AI_DATA_AGENT_") and k not in ("LOG_LEVEL", "LOG_FORMAT")
    }
    values = {**settings_kwargs, "data_dir": data_dir, "api_tokens": TOKEN, **overrides}
    for name, value in values.items():
        if value is not None:
            env[f"AI_DATA_AGENT_{name.upper()}"] = str(value)
    env.update(DAEMON_ENV)
    return env


class Launcher:
    """Starts daemons with the suite's settings; `close` stops them all and prints their logs."""

    def __init__(self, settings_kwargs: dict[str, Any], tmp: pytest.TempPathFactory) -> None:
        self.settings_kwargs = settings_kwargs
        self.tmp = tmp
        self.started: list[DaemonProcess] = []

    def __call__(self, data_dir: Path, **overrides: Any) -> DaemonProcess:
        port = free_port()
        log_path = self.tmp.mktemp("daemon-log") / "daemon.log"
        env = _env(self.settings_kwargs, data_dir, overrides)
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "ai_data_agent.service", "--host", "127.0.0.1",
                 "--port", str(port)],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        daemon = DaemonProcess(process, f"http://127.0.0.1:{port}", data_dir, log_path)
        self.started.append(daemon)
        daemon.wait_ready()
        return daemon

    def close(self) -> None:
        for daemon in self.started:
            daemon.close_clients()
            daemon.stop()
            # pytest shows this only when the test failed.
            print(f"--- daemon log ({daemon.base_url}) ---\n{daemon.log()}")
