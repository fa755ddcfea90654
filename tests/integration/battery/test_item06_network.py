"""Item 6: user code has no network: not the internet, the host, the engine, or metadata.

Outbound TCP to a public address, to the host's gateway address, to a port the
controller's host listens on, to the Docker API port and to 169.254.169.254,
DNS and IPv6 all fail (while ``localhost`` resolves to the sandbox's own
loopback), also right after requirements were installed (so the
install network was gone before user code started), in either install mode.
On gVisor the sandbox has no network at all (``--network=none``): installs
cannot work there, which the runsc variant asserts as the documented trade-off.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from .conftest import VARIANTS, Battery

pytestmark = pytest.mark.integration

PROBE = r"""
import json, os, socket
targets = json.loads(TARGETS)
out = {}
for name, (host, port) in targets.items():
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(3)
            sock.connect((host, port))
        out[name] = "connected"
    except OSError as exc:
        out[name] = "failed: %s: %s" % (type(exc).__name__, exc)
for name in ("pypi.org", "localhost.localdomain.invalid"):
    try:
        out["dns " + name] = str(socket.getaddrinfo(name, 443)[0][4])
    except OSError as exc:
        out["dns " + name] = "failed: %s: %s" % (type(exc).__name__, exc)
with socket.socket() as server:  # the sandbox's own loopback, by name, does work
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        socket.create_connection(("localhost", server.getsockname()[1]), timeout=3).close()
        out["own localhost"] = "connected"
    except OSError as exc:
        out["own localhost"] = "failed: %s: %s" % (type(exc).__name__, exc)
out["interfaces"] = sorted(os.listdir("/sys/class/net"))
print(json.dumps(out))
"""


def gateway(docker_client: docker.DockerClient) -> str:
    try:
        config = docker_client.api.inspect_network("bridge")["IPAM"]["Config"]
        return str(config[0]["Gateway"])
    except (docker.errors.NotFound, KeyError, IndexError):
        return "172.17.0.1"  # Docker's default, for engines without the bridge network


@pytest.fixture
def host_listener() -> Iterator[int]:
    """A port on every host address: stands for the controller's own API port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("0.0.0.0", 0))
        server.listen(16)
        yield server.getsockname()[1]


@pytest.fixture
def targets(docker_client: docker.DockerClient, host_listener: int) -> dict[str, Any]:
    gw = gateway(docker_client)
    return {
        "public": ["1.1.1.1", 443],
        "gateway-ssh": [gw, 22],
        "controller-port": [gw, host_listener],
        "docker-api": [gw, 2375],
        "docker-api-tls": [gw, 2376],
        "metadata": ["169.254.169.254", 80],
        "ipv6-public": ["2606:4700:4700::1111", 443],
    }


def probe(battery: Battery, targets: dict[str, Any], **request: Any) -> dict[str, Any]:
    # The targets are in the code, not in a variable: a run with variables of its own
    # never takes a pre-imported sandbox (its interpreter started without them).
    code = f"TARGETS = {json.dumps(targets)!r}\n{PROBE}"
    outcome = battery.run(code, timeout_s=60, **request)
    result = outcome.result
    assert result.status == "succeeded", (result.error, result.stderr, result.install.log_tail)
    facts = json.loads(result.stdout)
    assert isinstance(facts, dict)
    return facts


def assert_offline(facts: dict[str, Any]) -> None:
    assert facts["interfaces"] == ["lo"], facts
    assert facts["own localhost"] == "connected", facts
    reached = {
        k: v
        for k, v in facts.items()
        if k not in ("interfaces", "own localhost") and not str(v).startswith("failed: ")
    }
    assert not reached, f"reachable from user code: {reached}"


@pytest.mark.parametrize("battery", VARIANTS, indirect=True)
def test_user_code_has_no_network(battery: Battery, targets: dict[str, Any]) -> None:
    assert_offline(probe(battery, targets))
    battery.assert_host_unchanged()


@pytest.mark.parametrize("install_mode", ["per_run", "cache"])
def test_user_code_has_no_network_after_an_install(
    battery: Battery, targets: dict[str, Any], install_mode: str
) -> None:
    executor = battery.executor(install_mode=install_mode)

    facts = probe(battery, targets, using=executor, requirements=["six"])

    assert_offline(facts)
    battery.assert_host_unchanged()


@pytest.mark.parametrize("battery", ["runsc"], indirect=True)
def test_gvisor_cannot_install_requirements(battery: Battery) -> None:
    # The documented trade-off of runsc with --network=none (docs/security.md).
    outcome = battery.run("import six", requirements=["six"], install_mode="per_run")

    assert outcome.result.status == "install_failed", outcome.result.error
    battery.assert_host_unchanged()


def test_benign_twin_network_where_the_operator_allows_it(
    battery: Battery, targets: dict[str, Any]
) -> None:
    executor = battery.executor(allow_network=True)

    facts = probe(battery, targets, using=executor, network=True)

    assert facts["controller-port"] == "connected", facts  # the probe does see a network
    assert facts["interfaces"] != ["lo"]
    battery.assert_host_unchanged()
