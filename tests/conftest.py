"""Fixtures for every test: a hermetic environment for `Settings`, and the log of the test.

`Settings()` reads ``AI_DATA_AGENT_*`` variables (and the ``LOG_LEVEL`` and
``LOG_FORMAT`` aliases). The Makefile exports some of them and a developer's
shell may hold others, so each test starts without any of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.logs import LogLine, captured_logs
from tests.support.settings import is_settings_variable


@pytest.fixture(autouse=True)
def _clean_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if is_settings_variable(name):
            monkeypatch.delenv(name)


@pytest.fixture
def log_lines() -> Iterator[list[LogLine]]:
    """What loguru logs during the test, as (level, message) records."""
    with captured_logs() as lines:
        yield lines
