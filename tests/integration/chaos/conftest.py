"""Chaos tests run against a private, throwaway Docker engine, never the machine's own.

Restarting dockerd or letting a daemon's startup sweep remove "every sandbox
but its own" would break whatever else runs on the shared engine. So the
`private_engine` fixture starts a second dockerd (own data root, exec root,
socket, containerd namespace and network namespace, no bridge, no iptables), loads the sandbox
image into it, and points ``DOCKER_HOST`` of the code under test at it. It
needs root and the dockerd binary, as CI has; its containers have no network
at all, so nothing here installs requirements.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import requests

from ai_data_agent.executor.spec import LABEL_MANAGED
from ai_data_agent.settings import DEFAULT_FALLBACK_IMAGE
from tests.support.settings import sandbox_image

API_VERSION = "1.41"  # Docker 20.10


@dataclass
class PrivateEngine:
    """A dockerd this test session started, and can stop and start again."""

    root: Path
    image: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        config = self.root / "daemon.json"
        runtimes = {"runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]}}
        config.write_text(
            json.dumps({"runtimes": runtimes} if Path("/usr/bin/runsc").exists() else {})
        )
        log = (self.root / "dockerd.log").open("ab")
        self.process = subprocess.Popen(
            # Its own network namespace: a dockerd started with --bridge=none deletes the
            # default bridge (docker0) of the namespace it runs in, the shared engine's.
            [
                "unshare",
                "--net",
                "dockerd",
                "--config-file",
                str(config),
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "--pidfile",
                str(self.root / "docker.pid"),
                "-H",
                self.url,
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--ip6tables=false",
                "--containerd-namespace",
                f"chaos-{self.root.name}",
                "--containerd-plugins-namespace",
                f"chaos-{self.root.name}-plugins",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"private dockerd did not start:\n{self.log()}", pytrace=False)
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop this dockerd (its pid only) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def ready(self) -> bool:
        try:
            # A fixed API version: "auto" would connect in the constructor, and
            # a failure there leaks the half-made client's socket.
            client = docker.DockerClient(base_url=self.url, version=API_VERSION, timeout=5)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return False

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, version=API_VERSION, timeout=30)

    def managed_containers(self) -> list[str]:
        client = self.client()
        try:
            return [
                c["Id"][:12]
                for c in client.api.containers(all=True, filters={"label": LABEL_MANAGED})
            ]
        finally:
            client.close()

    def log(self) -> str:
        try:
            return (self.root / "dockerd.log").read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"


def _sandbox_image(shared: docker.DockerClient) -> str:
    image = sandbox_image() or DEFAULT_FALLBACK_IMAGE
    try:
        shared.images.get(image)
    except docker.errors.ImageNotFound:
        pytest.fail(f"the sandbox image {image} is missing (make images)", pytrace=False)
    return image


@pytest.fixture(scope="session")
def private_engine() -> Iterator[PrivateEngine]:
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.fail("chaos tests need root and dockerd for a private engine", pytrace=False)
    shared = docker.from_env()
    image = _sandbox_image(shared)
    # Short: a unix socket path must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="chaos-", dir="/run"))
    engine = PrivateEngine(root, image)
    engine.start()
    try:
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "-H", engine.url, "load", "-q"],
            stdin=save.stdout,
            check=True,
            capture_output=True,
            timeout=300,
        )
        assert save.wait(60) == 0
        assert save.stdout is not None
        save.stdout.close()
        yield engine
    finally:
        shared.close()
        engine.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def on_private_engine(
    private_engine: PrivateEngine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PrivateEngine]:
    """DOCKER_HOST of this process (and of daemons it starts) points at the private engine."""
    monkeypatch.setenv("DOCKER_HOST", private_engine.url)
    yield private_engine
    leftovers = private_engine.managed_containers() if private_engine.ready() else []
    for cid in leftovers:
        subprocess.run(["docker", "-H", private_engine.url, "rm", "-f", cid], capture_output=True)
    assert not leftovers, f"sandboxes left on the private engine: {leftovers}"


@pytest.fixture(autouse=True)
def no_leaked_sandboxes() -> None:
    """The suite-wide check looks at the shared engine; `on_private_engine` checks ours."""
