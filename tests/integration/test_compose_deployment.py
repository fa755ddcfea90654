"""The compose deployment as docs/deploy.md describes it: compose.yaml, unchanged, on the real engine.

``docker-compose up`` (or ``docker compose up``) starts the locally built
controller image (shared with test_controller_image) with the file's own
settings: a read-only root, the data directory as the one writable place,
the environment cache and uv as installs use them by default. Then runs with
a requirement, a session and artifacts go through it with the Python client,
and ``down`` leaves none of their sandboxes behind. ``make compose`` provides
the compose command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx
import pytest

from ai_data_agent.client import Client
from ai_data_agent.executor.spec import LABEL_MANAGED, LABEL_RUN_ID
from ai_data_agent.models import RunStatus
from ai_data_agent.session_models import CellStatus
from tests.support.controller_image import REPO
from tests.support.daemon import free_port
from tests.support.settings import ca_bundle, is_settings_variable
from tests.support.wait import poll

pytestmark = pytest.mark.integration

TOKEN = "compose-test-token"
READY_TIMEOUT_S = 120.0
COMPOSE_TIMEOUT_S = 300
DOCKER_SOCKET = Path("/var/run/docker.sock")


def compose_command() -> list[str]:
    """``docker-compose`` (v1) if installed, else the ``docker compose`` plugin."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    found = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if found.returncode == 0:
        return ["docker", "compose"]
    pytest.fail("no compose command: run `make compose` (scripts/install-compose.sh)")


@dataclass
class Deployment:
    url: str
    project: str
    directory: Path
    env: dict[str, str]
    seen: set[str]  # run and session ids whose sandboxes must be gone after `down`

    def compose(self, *args: str, timeout: float = COMPOSE_TIMEOUT_S) -> str:
        argv = [*compose_command(), "--project-name", self.project, *args]
        done = subprocess.run(
            argv,
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "ai-data-agent")[-6000:]

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False


def _environment(port: int) -> dict[str, str]:
    """The shell of someone following docs/deploy.md: the two required variables, a port."""
    env = {k: v for k, v in os.environ.items() if not is_settings_variable(k)}
    env.pop("DOCKER_HOST", None)  # compose.yaml mounts /var/run/docker.sock
    env["DOCKER_GID"] = str(DOCKER_SOCKET.stat().st_gid)
    env["AI_DATA_AGENT_API_TOKENS"] = TOKEN
    env["AI_DATA_AGENT_HOST_PORT"] = str(port)
    bundle = ca_bundle()
    if bundle is not None:  # a TLS-intercepting proxy's bundle, where the suite has one
        env["AI_DATA_AGENT_CA_BUNDLE"] = str(bundle)
    return env


@pytest.fixture(scope="module")
def deployment(controller_image: str) -> Iterator[Deployment]:
    """compose.yaml in a directory of its own (its ./data there), up until the module ends.

    The directory is made here, not by pytest: pytest's base temp directories are
    rotated by whichever session starts next on this machine, and ./data must
    outlive the module.
    """
    directory = Path(tempfile.mkdtemp(prefix="ai-data-agent-compose-"))
    shutil.copy(REPO / "compose.yaml", directory / "compose.yaml")
    (directory / "images").symlink_to(REPO / "images")  # the file's build context
    port = free_port()
    deployed = Deployment(
        url=f"http://127.0.0.1:{port}",
        project="ada" + "".join(ch for ch in directory.name.lower() if ch.isalnum())[-16:],
        directory=directory,
        env=_environment(port),
        seen=set(),
    )
    started = time.monotonic()
    try:
        deployed.compose("up", "-d", "--no-build")
        poll(
            deployed.ready,
            timeout_s=READY_TIMEOUT_S,
            what=f"{deployed.url}/readyz 200",
            diagnostics=deployed.logs,
            interval_s=0.5,
        )
        print(f"compose up and ready in {time.monotonic() - started:.1f} s")
        yield deployed
    finally:
        try:
            deployed.compose("down", "--timeout", "45")
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    engine = docker.from_env()
    try:
        left = engine.containers.list(all=True, filters={"label": LABEL_MANAGED}, sparse=True)
    finally:
        engine.close()
    ours = [
        c.short_id for c in left if (c.attrs.get("Labels") or {}).get(LABEL_RUN_ID) in deployed.seen
    ]
    assert not ours, f"sandboxes left after `compose down`: {ours}"


@pytest.fixture
def client(deployment: Deployment) -> Iterator[Client]:
    with Client(deployment.url, token=TOKEN, timeout=30.0) as client:
        yield client


def test_readyz_checks_the_data_volume_where_the_controller_writes(
    deployment: Deployment,
) -> None:
    checks = httpx.get(f"{deployment.url}/readyz", timeout=10).json()["checks"]
    assert checks["writable"].startswith("/app/data, /app/data/storage, /app/data/cache/"), checks


def test_a_run_with_a_requirement_and_an_artifact(
    deployment: Deployment, client: Client, tmp_path: Path
) -> None:
    code = "import six\nopen('outputs/six.txt', 'w').write(six.__name__)\nprint('ok')"
    result = client.run(code, requirements=["six"], timeout_s=60)
    deployment.seen.add(result.id)
    assert result.status == RunStatus.SUCCEEDED, (result.error, result.install.log_tail[-2000:])
    assert result.stdout == "ok\n"
    (artifact,) = result.artifacts
    saved = client.download_artifact(result.id, artifact, tmp_path)
    assert (artifact.file_path, saved.read_text()) == ("outputs/six.txt", "six")


def test_a_session_keeps_state_installs_and_hands_back_its_files(
    deployment: Deployment, client: Client
) -> None:
    with client.session(requirements=["six"]) as session:
        deployment.seen.add(session.info.id)
        assert (session.run("import six\nx = 6").status) == CellStatus.SUCCEEDED
        cell = session.run("open('outputs/x.txt', 'w').write(str(x * 7))\nx * 7")
        assert cell.status == CellStatus.SUCCEEDED, cell.error
        assert cell.result is not None and cell.result.data["text/plain"] == "42"
        (artifact,) = cell.artifacts
        assert session.download(artifact) == b"42"
