"""Tenants' CPU charges on PostgreSQL (migration 9) and SQLite alike: one contract for both
ledgers; a charge a worker writes refuses the tenant at every API node."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from ai_data_agent.errors import QuotaExceeded
from ai_data_agent.service.cluster.db import Database
from ai_data_agent.service.cluster.pg_cpu import PgCpuStore
from ai_data_agent.service.cluster.pg_store import PgRunStore
from ai_data_agent.service.cpu_usage import CPU_WINDOW_S, CpuAccount, CpuRecords, CpuStore
from ai_data_agent.service.metrics import ServiceMetrics
from ai_data_agent.settings import Settings
from ai_data_agent.tenant_models import Quotas

pytestmark = pytest.mark.cluster
NOW = 1_000_000.0


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    open_store: Callable[..., PgRunStore],
) -> Iterator[CpuRecords]:
    if request.param == "sqlite":
        store: CpuRecords = CpuStore(tmp_path / "tenants.sqlite3")
    else:
        store = PgCpuStore(open_store().db)  # migrated by the API node's store
    store.open()
    yield store
    store.close()


def test_the_ledger_keeps_each_tenants_charges_with_their_time(ledger: CpuRecords) -> None:
    ledger.charge("a", 0.5, at=NOW - 10, object_id="r1")
    ledger.charge("a", 0.25, at=NOW - 5, object_id="s1")
    ledger.charge("b", 2.0, at=NOW - 5, object_id="r2")
    assert sorted(ledger.charges("a", since=NOW - CPU_WINDOW_S)) == [
        (NOW - 10, 0.5),
        (NOW - 5, 0.25),
    ]
    assert ledger.charges("a", since=NOW - 6) == [(NOW - 5, 0.25)]
    assert ledger.charges("c", since=0) == []


def test_a_charge_a_worker_writes_refuses_the_tenant_at_every_api_node(
    open_store: Callable[..., PgRunStore], cluster_settings: Callable[..., Settings]
) -> None:
    one, two = open_store(), open_store()
    worker_db = Database(cluster_settings("worker"), role="worker")
    worker_db.open()
    try:
        worker = CpuAccount(PgCpuStore(worker_db), ServiceMetrics())
        worker.charge("a", 1.5, object_id="r1")  # a worker may insert a charge...
        with pytest.raises(psycopg.Error), worker_db.connection() as conn:
            conn.execute("DELETE FROM cpu_charges")  # ...but never take one back
    finally:
        worker_db.close()
    quotas = Quotas(cpu_seconds_per_hour=1)
    for node in (one, two):
        with pytest.raises(QuotaExceeded) as caught:
            CpuAccount(PgCpuStore(node.db), ServiceMetrics()).admit("a", quotas)
        error = caught.value
        assert (error.quota, error.limit, error.used) == ("cpu_seconds_per_hour", 1, 1.5)
        assert error.retry_after is not None and 3590 <= error.retry_after <= 3600
        CpuAccount(PgCpuStore(node.db), ServiceMetrics()).admit("b", quotas)  # not another's
    later = CpuAccount(PgCpuStore(two.db), ServiceMetrics(), clock=lambda: time.time() + 3601)
    later.admit("a", quotas)  # the hour has slid past it
