"""The HTTP daemon as a subprocess on loopback, for the benchmark.

    with DaemonProcess(data_dir, pool_size=2) as daemon:
        daemon.client.run("print('hi')")
        daemon.rss()                        # VmRSS of the daemon process, bytes
        daemon.pool_ids(api)                # its idle pooled containers (ids)

Started as ``python -m ai_data_agent.service`` with its own data dir, a random
bearer token and ``AI_DATA_AGENT_POOL_SIZE`` (other ``AI_DATA_AGENT_*``
variables of the caller are not passed on, except the CA bundle); its log goes
to ``<data_dir>/daemon.log``; SIGTERM stops it and drains its pool.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from ai_data_agent.client import Client
from ai_data_agent.executor.spec import LABEL_CONTROLLER, LABEL_RUN_ID
from bench.floor import vm_rss

__all__ = ["DaemonError", "DaemonProcess"]

REPO = Path(__file__).resolve().parent.parent
CONTROLLER_LINE = re.compile(r"daemon started: controller (\w+)")


class DaemonError(RuntimeError):
    """The daemon did not start; the message carries the end of its log."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DaemonProcess:
    """One daemon subprocess: start, client, RSS, pooled containers, stop."""

    def __init__(
        self, data_dir: Path, *, pool_size: int = 0, extra_env: dict[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.pool_size = pool_size
        self.extra_env = extra_env or {}
        self.port = _free_port()
        self.token = secrets.token_urlsafe(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.controller_id: str | None = None
        self.client = Client(self.url, self.token, timeout=120)
        self.log_path = data_dir / "daemon.log"

    def __enter__(self) -> DaemonProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 60.0) -> None:
        """Start it and wait until it answers (its pool fills in the background).

        Raises:
            DaemonError: it exited or did not answer within ``timeout_s``.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AI_DATA_AGENT_")}
        ca_bundle = os.environ.get("AI_DATA_AGENT_CA_BUNDLE")
        if ca_bundle:
            env["AI_DATA_AGENT_CA_BUNDLE"] = ca_bundle
        env.update(
            AI_DATA_AGENT_DATA_DIR=str(self.data_dir),
            AI_DATA_AGENT_API_TOKENS=self.token,
            AI_DATA_AGENT_POOL_SIZE=str(self.pool_size),
            AI_DATA_AGENT_LOG_LEVEL="INFO",
        )
        env.update(self.extra_env)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ai_data_agent.service", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DaemonError(
                    f"the daemon exited with {self.proc.returncode}: {self.log_tail()}"
                )
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            self.stop()
            raise DaemonError(f"the daemon did not answer in {timeout_s:g}s: {self.log_tail()}")
        found = CONTROLLER_LINE.search(self.log_path.read_text("utf-8", "replace"))
        self.controller_id = found.group(1) if found else None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return ""

    def rss(self) -> int | None:
        return vm_rss(self.proc.pid) if self.proc is not None else None

    def pool_ids(self, api: Any) -> set[str]:
        """Running containers of this daemon's controller that were started for its pool."""
        if self.controller_id is None:
            return set()
        found = api.containers(filters={"label": f"{LABEL_CONTROLLER}={self.controller_id}"})
        return {
            c["Id"]
            for c in found
            if (c.get("Labels") or {}).get(LABEL_RUN_ID, "").startswith("pool-")
        }

    def wait_pool_full(self, api: Any, timeout_s: float = 30.0) -> bool:
        if self.pool_size <= 0:
            return True
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.pool_ids(api)) >= self.pool_size:
                return True
            time.sleep(0.02)
        return False

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM, then wait (the daemon drains its pool); SIGKILL as a last resort."""
        self.client.close()
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
