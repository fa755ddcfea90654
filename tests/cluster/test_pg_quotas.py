"""Tenants' quotas and fair claims on PostgreSQL: counted in the admitting transaction
wherever the request lands, a claim for the tenant running fewest, a tenant at its cap
skipped."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from ai_data_agent.errors import QuotaExceeded
from ai_data_agent.models import Limits, RunRequest, RunStatus
from ai_data_agent.service.cluster.pg_sessions import PgSessionCalls, PgSessionRegistry
from ai_data_agent.service.cluster.pg_store import PgRunStore
from ai_data_agent.service.cluster.pg_workers import WorkerRegistry
from ai_data_agent.service.records import Outcome
from ai_data_agent.session_models import SessionInfo, SessionStatus
from ai_data_agent.tenant_models import Quotas

pytestmark = pytest.mark.cluster
LIMITS = Limits(timeout_s=5, memory_mb=256, cpus=1, network=False)


def admit(store: PgRunStore, run_id: str, tenant: str, quotas: Quotas | None = None) -> None:
    store.admit(
        run_id,
        RunRequest(code="x"),
        LIMITS,
        max_queued=100,
        lease_s=30,
        tenant=tenant,
        quotas=quotas,
    )


def test_a_tenants_run_quota_holds_across_api_nodes_and_frees_as_a_run_ends(
    open_store: Callable[..., PgRunStore],
) -> None:
    one, two = open_store(), open_store()
    WorkerRegistry(one.db).register("w1", name="w1", slots=4)
    quotas = Quotas(concurrent_runs=1, queued_runs=1)
    admit(one, "a1", "a", quotas)
    admit(two, "a2", "a", quotas)
    with pytest.raises(QuotaExceeded) as caught:
        admit(one, "a3", "a", quotas)
    assert (caught.value.quota, caught.value.limit, caught.value.used) == ("queued_runs", 1, 2)
    assert one.get("a3") is None  # nothing recorded
    admit(two, "b1", "b")  # another tenant is not held back
    one.finish("a1", Outcome(RunStatus.CANCELLED))
    admit(two, "a3", "a", quotas)  # counted out the moment it ended


def test_concurrent_admissions_of_one_tenant_never_pass_its_quota(
    open_store: Callable[..., PgRunStore],
) -> None:
    stores = [open_store() for _ in range(4)]
    WorkerRegistry(stores[0].db).register("w1", name="w1", slots=4)
    quotas = Quotas(concurrent_runs=2, queued_runs=1)
    admitted: list[str] = []
    refused: list[str] = []

    def submit(number: int) -> None:
        for attempt in range(5):
            run_id = f"r{number}-{attempt}"
            try:
                admit(stores[number], run_id, "a", quotas)
                admitted.append(run_id)
            except QuotaExceeded:
                refused.append(run_id)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 3 and len(refused) == 17


def test_a_claim_takes_the_tenant_running_fewest_and_skips_one_at_its_cap(
    open_store: Callable[..., PgRunStore],
) -> None:
    api, worker = open_store(), open_store("worker")
    WorkerRegistry(api.db).register("w1", name="w1", slots=4)
    for number in range(5):
        admit(api, f"flood{number}", "flood")
    admit(api, "single", "single")
    capped = Quotas(concurrent_runs=1)
    admit(api, "capped0", "capped", capped)
    admit(api, "capped1", "capped", capped)
    taken = [worker.claim("w1") for _ in range(5)]
    order = [claimed[0] for claimed in taken if claimed is not None]
    # flood0 is oldest; then single and capped0 run nothing; capped1 waits at its cap.
    assert order == ["flood0", "single", "capped0", "flood1", "flood2"]
    worker.finish("capped0", Outcome(RunStatus.CANCELLED))
    claimed = worker.claim("w1")
    assert claimed is not None and claimed[0] == "capped1"  # running 0, the fewest


def test_a_tenants_session_quota_counts_live_sessions_and_creates_in_flight(
    open_store: Callable[..., PgRunStore],
) -> None:
    api, worker = open_store(), open_store("worker")
    quotas = Quotas(concurrent_sessions=2)
    one, two = PgSessionCalls(api.db), PgSessionCalls(open_store().db)
    one.submit("create", "", None, tenant="a", quotas=quotas)  # queued: no worker took it
    now = datetime.now(UTC)
    registry = PgSessionRegistry(worker.db, node="w1")
    live = SessionInfo(
        id="s1", tenant="a", status=SessionStatus.IDLE, created_at=now, last_activity_at=now
    )
    registry.put(live)
    with pytest.raises(QuotaExceeded) as caught:
        two.submit("create", "", None, tenant="a", quotas=quotas)
    assert (caught.value.quota, caught.value.limit, caught.value.used) == (
        "concurrent_sessions",
        2,
        2,
    )
    two.submit("create", "", None, tenant="b", quotas=quotas)
    registry.put(live.model_copy(update={"status": SessionStatus.CLOSED}))
    two.submit("create", "", None, tenant="a", quotas=quotas)  # the close counts at once


def test_resumes_and_forks_start_sessions_held_to_the_same_quota(
    open_store: Callable[..., PgRunStore],
) -> None:
    calls = PgSessionCalls(open_store().db)
    quotas = Quotas(concurrent_sessions=1)
    calls.submit("resume", "paused1", None, tenant="a", quotas=quotas)  # on its way back
    for kind in ("create", "fork", "resume"):
        with pytest.raises(QuotaExceeded) as caught:
            calls.submit(kind, "paused2", None, tenant="a", quotas=quotas)
        assert (caught.value.quota, caught.value.used) == ("concurrent_sessions", 1)
    calls.submit("fork", "paused2", None, tenant="b", quotas=quotas)  # another tenant's own
    calls.submit("cell", "paused1", "w1", tenant="a", quotas=quotas)  # starts nothing
