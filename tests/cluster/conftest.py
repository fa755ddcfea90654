"""Fixtures of the cluster tests: a throwaway PostgreSQL for the session, a database per test.

    def test_x(pg: Postgres, database: str, api_settings: Settings): ...
    def test_y(open_store: Callable[..., PgRunStore]): ...   # PgRunStores, closed after

Every test here needs PostgreSQL's server programs (Debian's ``postgresql``,
which .ci/run installs): a missing one fails, it never skips.
"""

from __future__ import annotations

import gc
import itertools
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.cluster.pg_store import PgRunStore
from ai_data_agent.settings import Settings
from tests.support.engines import PrivateEngine

from .nodes import IMAGE, Cluster
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


@pytest.fixture(scope="session")
def engines() -> Iterator[list[PrivateEngine]]:
    """Three private engines (for up to three workers), the sandbox image loaded in each."""
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.fail("cluster tests need root and dockerd for private engines", pytrace=False)
    made: list[PrivateEngine] = []
    try:
        for name in ("w1", "w2", "w3"):
            made.append(
                PrivateEngine.create(Path(tempfile.mkdtemp(prefix="ce-", dir="/run")), name)
            )
        threads = [threading.Thread(target=e.load, args=(IMAGE,)) for e in made]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        yield made
    finally:
        for engine in made:
            engine.stop()
            shutil.rmtree(engine.root, ignore_errors=True)


@pytest.fixture
def cluster(pg: Postgres, database: str, tmp_path: Path) -> Iterator[Cluster]:
    """Nodes of one cluster on this test's database; after the test none may leave a sandbox."""
    made = Cluster(pg, database, tmp_path)
    yield made
    leftovers = made.close()
    gc.collect()  # leaked sockets warn now, inside this test, not at the session's end
    assert not leftovers, f"sandboxes left on the private engines: {leftovers}"


@pytest.fixture
def open_store(cluster_settings: Callable[..., Settings]) -> Iterator[Callable[..., PgRunStore]]:
    made: list[PgRunStore] = []

    def build(role: str = "api", **overrides: object) -> PgRunStore:
        settings = cluster_settings(role, **overrides)
        store = PgRunStore(Database(settings, role=role), migrate=role == "api")
        store.open()
        made.append(store)
        return store

    yield build
    for store in made:
        store.close()
