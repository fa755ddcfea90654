"""The controller image (images/controller) as a container on the real engine.

It starts ``ai-data-agent/controller:latest`` the way compose.yaml does: the
host's Docker socket mounted, the socket's group added, a token, the host CA
bundle at the same path, a read-only root. Then it drives the daemon through
its HTTP API with `ai_data_agent.client.Client`: the sandboxes it starts are
siblings on the host engine, and none may be left behind.

Nothing is pulled: the image is built from the local base by
``images/controller/build.sh`` when it is missing or older than the code
(the ``controller_image`` fixture, shared with the compose deployment's test).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer

from ai_data_agent.client import Client, RunIncomplete, Unauthorized
from ai_data_agent.executor.spec import LABEL_CONTROLLER
from ai_data_agent.models import RunStatus

pytestmark = pytest.mark.integration

DOCKER_SOCKET = Path("/var/run/docker.sock")
PORT = 8000
READY_TIMEOUT_S = 90.0
TOKEN = secrets.token_urlsafe(24)


def _env_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _controller_id(container: DockerContainer) -> str:
    """The id the daemon labels its sandboxes with, from its start line: others' are not ours."""
    stdout, stderr = container.get_logs()
    found = re.search(
        r"daemon started: controller (\w+)", (stdout + stderr).decode("utf-8", "replace")
    )
    if found is None:
        pytest.fail("the controller's log does not say its controller id", pytrace=False)
    return found.group(1)


def _wait_ready(url: str, container: DockerContainer) -> None:
    """Poll /readyz until 200; fail with the last answer and the container's logs."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status == "exited":
            last = f"the controller exited with {wrapped.attrs['State']['ExitCode']}"
            break
        try:
            response = httpx.get(f"{url}/readyz", timeout=5.0)
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code == 200:
                return
            last = f"{response.status_code}: {response.text[:500]}"
        time.sleep(0.5)
    stdout, stderr = container.get_logs()
    logs = (stdout + stderr).decode("utf-8", "replace")[-4000:]
    pytest.fail(f"controller not ready at {url}/readyz: {last}\nlogs:\n{logs}", pytrace=False)


@pytest.fixture(scope="module")
def controller(
    controller_image: str, settings_kwargs: dict[str, Any], docker_client: docker.DockerClient
) -> Iterator[str]:
    """A running controller container; yields its base URL. Stopped with SIGTERM at the end."""
    assert testcontainers_config.ryuk_disabled, "set TESTCONTAINERS_RYUK_DISABLED=true: no pulls"
    if not DOCKER_SOCKET.is_socket():
        pytest.fail(f"{DOCKER_SOCKET} is not a socket: the controller needs the engine's socket")
    container = (
        DockerContainer(controller_image)
        .with_exposed_ports(PORT)
        .with_volume_mapping(str(DOCKER_SOCKET), str(DOCKER_SOCKET), "rw")
        .with_env("AI_DATA_AGENT_API_TOKENS", TOKEN)
        # testcontainers hands this "size" to Docker as the tmpfs mount options.
        .with_tmpfs_mount("/tmp", "size=64m")
        .with_tmpfs_mount("/app/data", "size=64m,uid=1000,gid=1000,mode=0750")
        .with_kwargs(
            group_add=[str(DOCKER_SOCKET.stat().st_gid)],
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"],
        )
    )
    # The suite's sandbox policy (small limits, no pulls, the CA bundle), as the
    # controller reads it: AI_DATA_AGENT_* variables.
    for name, value in settings_kwargs.items():
        if value is not None:
            container.with_env(f"AI_DATA_AGENT_{name.upper()}", _env_value(value))
    ca_bundle = settings_kwargs.get("ca_bundle")
    if ca_bundle is not None:  # a host path: mounted at the same path, as in compose.yaml
        container.with_volume_mapping(str(ca_bundle), str(ca_bundle), "ro")
    container.start()
    try:
        url = f"http://{container.get_container_host_ip()}:{container.get_exposed_port(PORT)}"
        _wait_ready(url, container)
        controller_id = _controller_id(container)
        yield url
    finally:
        try:
            container.get_wrapped_container().stop(timeout=45)  # SIGTERM, as compose does
        finally:
            container.stop()
    ours = {"label": f"{LABEL_CONTROLLER}={controller_id}"}
    left = docker_client.containers.list(all=True, filters=ours, sparse=True)
    assert not left, f"sandboxes left after the controller stopped: {[c.short_id for c in left]}"


@pytest.fixture
def client(controller: str) -> Iterator[Client]:
    with Client(controller, token=TOKEN, timeout=30.0) as client:
        yield client


def test_the_controller_is_live_and_ready(controller: str) -> None:
    assert httpx.get(f"{controller}/healthz", timeout=5.0).status_code == 200
    assert httpx.get(f"{controller}/readyz", timeout=5.0).status_code == 200


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_runs_need_the_token(controller: str, token: str | None) -> None:
    with Client(controller, token=token) as anonymous, pytest.raises(Unauthorized) as info:
        anonymous.run("print('never')")
    assert info.value.status_code == 401


def test_hello_world_through_the_http_api(client: Client) -> None:
    result = client.run("print('hello from the controller')", timeout_s=30)
    assert result.status == RunStatus.SUCCEEDED, (result.error, result.stderr[-2000:])
    assert result.stdout == "hello from the controller\n"
    assert result.environment.uid == 1000


def test_installs_reach_the_index_through_the_mounted_ca_bundle(client: Client) -> None:
    code = "import six; print(six.__name__)"
    result = client.run(code, requirements=["six"], timeout_s=30)
    assert result.status == RunStatus.SUCCEEDED, (result.error, result.install.log_tail[-2000:])
    assert result.stdout == "six\n"


def test_submit_wait_get_and_list(client: Client) -> None:
    run_id = client.submit("import sys; print('async'); sys.exit(3)", timeout_s=30)
    result = client.wait(run_id, poll_interval=0.2, timeout=120)
    assert (result.status, result.exit_code, result.stdout) == (RunStatus.FAILED, 3, "async\n")
    record = client.get(run_id)
    assert record.status == RunStatus.FAILED and record.result == result
    assert run_id in [item.id for item in client.list(limit=100).items]


def test_cancel_kills_the_sandbox(client: Client, docker_client: docker.DockerClient) -> None:
    run_id = client.submit("import time; print('up', flush=True); time.sleep(60)", timeout_s=60)
    deadline = time.monotonic() + 60
    while client.get(run_id).status != "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    client.cancel(run_id)
    try:
        result = client.wait(run_id, poll_interval=0.2, timeout=60)
    except RunIncomplete as exc:  # cancelled before a result existed
        assert exc.record.status == RunStatus.CANCELLED
    else:
        assert result.status == RunStatus.CANCELLED
    # The autouse leak check then proves the container is gone.
