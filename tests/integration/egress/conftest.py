"""The egress tests' private internet, and executors whose proxy lives in it.

`PrivateInternet` (tests/support/egress_net.py) makes a network namespace with
HTTPS servers on documentation addresses (certificates from a trustme CA that
sandboxes trust as their CA bundle), a TCP echo server, and canaries on
169.254.169.254 and 10.0.0.5 that fail the test when anything reaches them. The
proxy's connections and lookups happen in that namespace (`EgressProxy(netns=)`)
and its names come from a hosts table, so nothing here touches the host's
network. Creating a namespace needs root, as CI has; elsewhere these tests fail
saying so rather than skip.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from ai_data_agent import Executor, Settings
from ai_data_agent.egress.log import EgressEvent
from ai_data_agent.egress.proxy import EgressProxy
from ai_data_agent.egress.resolver import HostsResolver
from tests.support.egress_net import PrivateInternet
from tests.support.settings import ca_bundle

RUNTIMES = ("runc", "runsc")
EGRESS_SETTINGS: dict[str, Any] = {
    "egress_allow": ["files.test", "mirror.test", "rebind.test", "inside.test", "db.test:5432"],
    "egress_deny": ["mirror.test:80"],
    "egress_allow_cidrs": ["203.0.113.0/24"],
}


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CA bundle sandboxes trust: the host's (installs need it) and the trustme CA."""
    path = tmp_path_factory.mktemp("egress-ca") / "ca.pem"
    host = ca_bundle()
    path.write_bytes((host.read_bytes() if host is not None else b"") + ca.cert_pem.bytes())
    return path


@pytest.fixture(scope="session")
def internet(ca: trustme.CA) -> Iterator[PrivateInternet]:
    try:
        with PrivateInternet.create(ca) as net:
            yield net
    except subprocess.CalledProcessError as exc:
        pytest.fail(
            f"the egress tests need root to make a network namespace: {exc.stderr!r}",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def no_canary_reached(internet: PrivateInternet) -> Iterator[None]:
    """Nothing may ever reach the metadata address or the private network."""
    before = len(internet.canary_hits())
    yield
    assert internet.canary_hits()[before:] == [], "a canary was reached"


@pytest.fixture
def egress_executor(
    internet: PrivateInternet,
    make_settings: Callable[..., Settings],
    ca_file: Path,
    our_controllers: set[str],
) -> Iterator[Callable[..., tuple[Executor, list[EgressEvent]]]]:
    """An executor on ``runtime`` whose egress proxy lives in the private internet, and
    the list its connection log writes to."""
    made: list[Executor] = []

    def build(runtime: str, **overrides: Any) -> tuple[Executor, list[EgressEvent]]:
        settings = make_settings(
            runtime=runtime, ca_bundle=ca_file, **{**EGRESS_SETTINGS, **overrides}
        )
        resolver = HostsResolver.parse(internet.hosts_text)
        proxy = EgressProxy(settings, resolver=resolver, netns=internet.netns)
        events: list[EgressEvent] = []
        proxy.log.add_sink(events.append)
        executor = Executor(settings, egress=proxy)
        our_controllers.add(executor.controller_id)
        made.append(executor)
        return executor, events

    yield build
    for executor in made:
        executor.close()
