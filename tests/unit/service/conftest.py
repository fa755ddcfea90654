"""Fixtures for the daemon's in-process tests (fake executor, no Docker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from service_fakes import make_settings

from ai_data_agent.settings import Settings


@pytest.fixture
def anyio_backend() -> str:
    # uvicorn serves the daemon on asyncio; the waits in the app use its futures.
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """One worker, one queue slot, a short grace period, a token."""
    return make_settings(tmp_path)
