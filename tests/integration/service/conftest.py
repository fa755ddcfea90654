"""One daemon for a module's tests (`start_daemon`, for a test's own, is suite-wide).

response = shared_daemon.client().post("/v1/runs", json={"code": "print(1)"})
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.daemon import Daemon


@pytest.fixture(scope="module")
def shared_daemon(
    settings_kwargs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Daemon]:
    """One worker, one queue slot. Tests leave it idle."""
    values = {**settings_kwargs, "max_concurrent_runs": 1, "max_queued_runs": 1}
    daemon = Daemon.start(tmp_path_factory.mktemp("shared-data"), values)
    yield daemon
    daemon.stop()
    print(f"--- daemon log ({daemon.url}) ---\n{daemon.log()}")
