"""Fixtures for the unit tests (no Docker anywhere below this directory)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from client_stub import BASE, Recorder
from fakes import SANDBOX_GID, SANDBOX_UID, SandboxUser, build_wheel

from ai_data_agent import settings as settings_module
from ai_data_agent.client import Client


@pytest.fixture(autouse=True)
def _no_host_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings() finds no CA bundle of this machine's; tests that need one provide it."""
    monkeypatch.setattr(settings_module, "SYSTEM_CA_BUNDLES", ())
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)


@pytest.fixture
def sandbox_tmp(tmp_path: Path) -> Path:
    """The TMPDIR a host-side runner makes its sandbox dir in."""
    path = tmp_path / "container-tmp"
    path.mkdir()
    return path


@pytest.fixture
def unprivileged_tmp() -> Iterator[Path]:
    """A directory the sandbox user (1000:1000) can use when the tests run as root.

    pytest's ``tmp_path`` lives under a root-only directory, so this one is
    made directly in the system temp dir and handed to the sandbox user.
    """
    path = Path(tempfile.mkdtemp(prefix="ai_data_agent_test_"))
    try:
        if os.geteuid() == 0:
            os.chown(path, SANDBOX_UID, SANDBOX_GID)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A find-links directory with one tiny wheel, ``aida-probe==1.0``: installs offline."""
    directory = tmp_path_factory.mktemp("wheelhouse")
    build_wheel(directory, "aida-probe", "1.0", "VALUE = 42\n")
    return directory


@pytest.fixture(scope="session")
def sandbox_user() -> SandboxUser:
    """Run as 1000:1000 when the tests run as root (mode bits mean nothing to root).

    The interpreter must be reachable by that user (a pyenv under /root is not);
    the runner is stdlib-only, so any Python >= 3.9 on the host will do.
    """
    if os.geteuid() != 0:
        return SandboxUser({}, sys.executable)
    kwargs: dict[str, object] = {"user": SANDBOX_UID, "group": SANDBOX_GID, "extra_groups": []}
    for candidate in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if not candidate:
            continue
        try:
            probe = subprocess.run(
                [candidate, "-I", "-c", "import sys; assert sys.version_info >= (3, 9)"],
                capture_output=True,
                timeout=30,
                check=False,
                **kwargs,  # type: ignore[arg-type]
            )
        except OSError:
            continue
        if probe.returncode == 0:
            return SandboxUser(kwargs, candidate)
    pytest.skip("no Python >= 3.9 that uid 1000 can execute")


@pytest.fixture
def client_for() -> Iterator[Callable[[Recorder], Client]]:
    """Clients of a stub daemon (`client_stub.Recorder`), closed after the test."""
    clients: list[Client] = []

    def make(recorder: Recorder) -> Client:
        client = Client(BASE, token="s3cret", timeout=5.0, transport=httpx.MockTransport(recorder))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
