"""Fixtures of the cluster tests: a throwaway PostgreSQL for the session, a database per test.

    def test_x(pg: Postgres, database: str, api_settings: Settings): ...

Every test here needs PostgreSQL's server programs (Debian's ``postgresql``,
which .ci/run installs): a missing one fails, it never skips.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ai_data_agent.settings import Settings

from .postgres import Postgres

_numbers = itertools.count()


@pytest.fixture(scope="session")
def pg() -> Iterator[Postgres]:
    # Short: the unix socket path must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
    try:
        server = Postgres.create(root)
    except Exception as exc:
        pytest.fail(f"cannot start a throwaway PostgreSQL: {exc}", pytrace=False)
    yield server
    server.destroy()


@pytest.fixture
def database(pg: Postgres) -> str:
    """A fresh database for this test, owned by the API role."""
    name = f"t{next(_numbers)}"
    pg.create_database(name)
    return name


@pytest.fixture
def cluster_settings(pg: Postgres, database: str) -> Callable[..., Settings]:
    """Settings for a node of ``role`` on this test's database, over TLS (verify-full)."""

    def build(role: str = "api", **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": pg.url(role, database),
            "database_sslmode": "verify-full",
            "database_sslrootcert": pg.ca,
            "lease_timeout_s": 2.0,
            "heartbeat_interval_s": 0.5,
            "max_concurrent_runs": 2,
            "max_queued_runs": 4,
        }
        return Settings(**{**values, **overrides})

    return build
