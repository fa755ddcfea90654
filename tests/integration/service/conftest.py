"""Fixtures that start the real daemon (``python -m ai_data_agent.service``) on a free port.

    daemon = start_daemon(data_dir, max_concurrent_runs=1)
    response = daemon.client().post("/v1/runs", json={"code": "print(1)"})
    daemon.kill()            # SIGKILL; daemon.stop() is SIGTERM and a bounded wait

Settings are the integration suite's (`settings_kwargs`) as ``AI_DATA_AGENT_*``
variables, plus overrides. Every daemon a test starts is stopped afterwards,
and its log is shown when the test fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .daemon_process import DaemonProcess, Launcher


@pytest.fixture
def start_daemon(
    settings_kwargs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Launcher]:
    """Start daemons for one test; all are stopped after it."""
    launcher = Launcher(settings_kwargs, tmp_path_factory)
    yield launcher
    launcher.close()


@pytest.fixture(scope="module")
def shared_daemon(
    settings_kwargs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaemonProcess]:
    """One daemon for a module's tests: one worker, one queue slot. Tests leave it idle."""
    launcher = Launcher(settings_kwargs, tmp_path_factory)
    yield launcher(tmp_path_factory.mktemp("shared-data"), max_concurrent_runs=1, max_queued_runs=1)
    launcher.close()
