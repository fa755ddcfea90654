"""Chaos tests run against a private, throwaway Docker engine, never the machine's own.

Restarting dockerd or letting a daemon's startup sweep remove "every sandbox
but its own" would break whatever else runs on the shared engine. So the
`private_engine` fixture starts a second dockerd (`tests.support.engines`), loads
the sandbox image into it, and points ``DOCKER_HOST`` of the code under test at it.
It needs root and the dockerd binary, as CI has.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from ai_data_agent.settings import DEFAULT_FALLBACK_IMAGE
from tests.support.engines import PrivateEngine
from tests.support.settings import sandbox_image


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
    engine = PrivateEngine(root, "chaos")
    try:
        try:
            engine.start()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        engine.load(image)
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
    leftovers = private_engine.remove_sandboxes() if private_engine.ready() else []
    assert not leftovers, f"sandboxes left on the private engine: {leftovers}"


@pytest.fixture(autouse=True)
def no_leaked_sandboxes() -> None:
    """The suite-wide check looks at the shared engine; `on_private_engine` checks ours."""
