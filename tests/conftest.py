"""Fixtures for every test: a hermetic environment for `Settings`.

`Settings()` reads ``AI_DATA_AGENT_*`` variables (and the ``LOG_LEVEL`` and
``LOG_FORMAT`` aliases). The Makefile exports some of them and a developer's
shell may hold others, so each test starts without any of them.
"""

from __future__ import annotations

import os

import pytest

# Unprefixed aliases that Settings also reads.
SETTINGS_ALIASES = ("LOG_LEVEL", "LOG_FORMAT")


@pytest.fixture(autouse=True)
def _clean_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("AI_DATA_AGENT_") or name.upper() in SETTINGS_ALIASES:
            monkeypatch.delenv(name)
