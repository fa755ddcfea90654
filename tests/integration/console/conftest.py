"""Each console test module's daemon: one per module, signed in to with CONSOLE_TOKEN.

The token is the operator's, in a token file the module may rewrite (an emptied
file signs the browser out).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.console import CONSOLE_TOKEN
from tests.support.daemon import Daemon


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("console-tokens") / "tokens"
    path.write_text(f"{CONSOLE_TOKEN}\n")
    return path


@pytest.fixture(scope="module")
def daemon(
    settings_kwargs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, token_file: Path
) -> Iterator[Daemon]:
    values = {
        **settings_kwargs,
        "install_mode": "cache",
        "installer": "uv",
        "max_concurrent_runs": 2,
        "max_queued_runs": 4,
        "api_token_file": token_file,
    }
    started = Daemon.start(tmp_path_factory.mktemp("console-data"), values)
    yield started
    started.stop()
    print(f"--- daemon log ({started.url}) ---\n{started.log()}")
