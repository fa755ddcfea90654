"""The real daemon (``python -m ai_data_agent.service``) as a subprocess on loopback.

    daemon = Daemon.start(data_dir, {"max_concurrent_runs": 1, "ca_bundle": ca_bundle()})
    with daemon.client() as http:
        http.post("/v1/runs", json={"code": "print(1)"})
    daemon.kill()               # SIGKILL, to this pid only
    daemon = daemon.restart()   # the same port, data dir, settings and token
    daemon.stop()               # SIGTERM (it drains), a bounded wait, SIGKILL as a last resort

The tests (through the ``start_daemon`` fixtures) and the benchmark use this
one class. Settings reach the child only as the ``AI_DATA_AGENT_*`` variables
made from the values given (`child_env`); the rest of the environment is
inherited, so a measured test run measures the daemon too (coverage's
subprocess patch). Its bearer token is random unless given; its output goes to
a log file in its data dir, whose end `log` returns for failure messages. A
daemon started from the main thread gets SIGTERM when the test process dies, so
a test run that is killed (a timeout) leaves no daemon behind.
"""

from __future__ import annotations

import ctypes
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ai_data_agent.models import RunStatus
from tests.support.settings import child_env
from tests.support.wait import poll

__all__ = ["TERMINAL", "Daemon", "DaemonError", "free_port"]

TERMINAL = frozenset(status.value for status in RunStatus)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: SIGTERM when the thread that started it ends (so: the main thread)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


CONTROLLER_LINE = re.compile(r"daemon started: controller (\w+)")
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 40.0


class DaemonError(AssertionError):
    """The daemon exited or did not answer; the message ends with its log."""


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
    token: str
    extra_env: dict[str, str] = field(default_factory=dict)
    _clients: list[httpx.Client] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        data_dir: Path,
        settings: Mapping[str, Any] | None = None,
        *,
        extra_env: Mapping[str, str] | None = None,
        port: int | None = None,
        token: str | None = None,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> Daemon:
        """Start one and wait until ``/readyz`` answers 200.

        Raises:
            DaemonError: it exited, or was not ready within ``ready_timeout_s``.
        """
        # INFO: the daemon's own lines (its controller id among them), not the access log.
        values = {"log_level": "INFO", **(settings or {})}
        token = token or secrets.token_urlsafe(16)
        port = port or free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        env = child_env({**values, "data_dir": data_dir, "api_tokens": token})
        env.update(extra_env or {})
        log_path = data_dir / f"daemon-{port}-{time.time_ns()}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ai_data_agent.service",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=(
                    _die_with_parent
                    if threading.current_thread() is threading.main_thread()
                    else None
                ),
            )
        daemon = cls(process, port, data_dir, log_path, values, token, dict(extra_env or {}))
        try:
            daemon.wait_ready(ready_timeout_s)
        except BaseException:
            daemon.stop()
            raise
        return daemon

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def controller_id(self) -> str | None:
        """The controller id the daemon logged at start (labels its sandboxes)."""
        found = CONTROLLER_LINE.search(self.log(chars=None))
        return found.group(1) if found else None

    def client(self, token: str | None = None, timeout: float = 60) -> httpx.Client:
        """An HTTP client with ``token`` (by default the daemon's own; ``""``: no
        Authorization header); closed at `stop`."""
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._clients.append(client)
        return client

    def _request(self, method: str, path: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=60) as http:
            return http.request(method, path)

    def log(self, chars: int | None = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return text if chars is None else text[-chars:]

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise DaemonError(f"the daemon exited ({self.process.returncode}):\n{self.log()}")
            try:
                return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        try:
            poll(ready, timeout_s=timeout_s, what="/readyz 200", interval_s=0.1)
        except DaemonError:
            raise
        except AssertionError as exc:
            raise DaemonError(f"{exc}\n{self.log()}") from None

    def kill(self) -> None:
        """SIGKILL to this daemon's pid only."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM and wait (it drains its runs and pool); SIGKILL if it overstays. Its status."""
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def restart(self) -> Daemon:
        """A new daemon on the same port, data dir, settings and token (after `kill` or `stop`)."""
        return Daemon.start(
            self.data_dir, self.settings, extra_env=self.extra_env, port=self.port, token=self.token
        )

    def submit(self, code: str, **fields: Any) -> str:
        """Start a run (``fields``: more of its request) without waiting for it; its id."""
        with self.client() as http:
            answer = http.post("/v1/runs", json={"code": code, "wait": False, **fields})
        assert answer.status_code == 202, answer.text
        run_id: str = answer.json()["id"]
        return run_id

    def record(self, run_id: str) -> dict[str, Any]:
        response = self._request("GET", f"/v1/runs/{run_id}")
        response.raise_for_status()
        record: dict[str, Any] = response.json()
        return record

    def wait_terminal(self, run_id: str, timeout_s: float = 120) -> dict[str, Any]:
        """The run's record once it has ended."""
        found: list[dict[str, Any]] = []

        def ended() -> bool:
            found[:] = [self.record(run_id)]
            return found[0]["status"] in TERMINAL

        poll(
            ended,
            timeout_s=timeout_s,
            what=f"run {run_id} to end",
            diagnostics=self.log,
            interval_s=0.2,
        )
        return found[0]
