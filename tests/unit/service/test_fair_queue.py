"""The fair run queue and the quota checks, on their own (no daemon)."""

from __future__ import annotations

import pytest

from ai_data_agent.errors import QuotaExceeded
from ai_data_agent.service.fair_queue import FairQueue
from ai_data_agent.service.metrics import MAX_TENANT_LABELS, OTHER_TENANTS, ServiceMetrics
from ai_data_agent.service.quotas import check_runs, check_sessions, check_storage
from ai_data_agent.tenant_models import Quotas


def test_a_free_slot_goes_to_the_tenant_running_fewest() -> None:
    queue = FairQueue[str]()
    for n in range(3):
        queue.push("a", f"a{n}")
    assert queue.pop() == ("a", "a0")
    queue.push("b", "b0")
    assert queue.pop() == ("b", "b0")  # a runs one, b none
    assert queue.pop() == ("a", "a1")  # b's queue is empty
    assert (queue.running("a"), queue.queued("a"), len(queue)) == (2, 1, 1)


def test_tenants_running_as_many_take_turns() -> None:
    queue = FairQueue[str]()
    for tenant in "abc":
        for n in range(3):
            queue.push(tenant, f"{tenant}{n}")
    order = []
    while (taken := queue.pop()) is not None:
        order.append(taken[1])
        queue.done(taken[0])  # one slot: each ends before the next starts
    assert order == ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]


def test_a_flood_delays_another_tenant_by_at_most_one_run_per_slot() -> None:
    queue = FairQueue[int]()
    slots = 2
    for n in range(200):
        queue.push("flood", n)
    running = [queue.pop() for _ in range(slots)]
    queue.push("single", -1)
    assert running == [("flood", 0), ("flood", 1)]
    queue.done("flood")  # the first slot frees: the single run is next
    assert queue.pop() == ("single", -1)


def test_a_tenant_at_its_cap_waits_while_others_run() -> None:
    queue = FairQueue[str]()
    queue.push("a", "a0", cap=1)
    queue.push("a", "a1", cap=1)
    queue.push("b", "b0")
    assert queue.pop() == ("a", "a0")
    assert queue.pop() == ("b", "b0")
    assert queue.pop() is None and not queue.ready() and len(queue) == 1
    queue.done("a")
    assert queue.ready() and queue.pop() == ("a", "a1")


def test_remove_and_drain_keep_the_counts_and_forget_idle_tenants() -> None:
    queue = FairQueue[str]()
    queue.push("a", "a0")
    queue.push("a", "a1")
    queue.push("b", "b0")
    assert queue.remove("a", "a1") and not queue.remove("a", "a1")
    assert queue.pop() == ("a", "a0")
    assert queue.drain() == ["b0"]
    assert (len(queue), queue.queued("b"), queue.running("a")) == (0, 0, 1)
    queue.done("a")
    queue.done("a")  # once too often: ignored
    assert queue.running("a") == 0 and queue.pop() is None


@pytest.mark.parametrize(
    ("quotas", "running", "queued", "refused"),
    [
        (Quotas(), 50, 50, None),
        (Quotas(concurrent_runs=2), 2, 40, None),  # no queued_runs: only the host's queue
        (Quotas(concurrent_runs=2, queued_runs=1), 2, 0, None),
        (Quotas(concurrent_runs=2, queued_runs=1), 2, 1, ("queued_runs", 1, 1)),
        (Quotas(concurrent_runs=2, queued_runs=1), 0, 3, ("queued_runs", 1, 3)),
        (Quotas(concurrent_runs=2, queued_runs=0), 1, 0, None),
        (Quotas(concurrent_runs=2, queued_runs=0), 1, 1, ("concurrent_runs", 2, 2)),
        (Quotas(queued_runs=1), 4, 0, None),  # the host's 4 slots bound what it runs
        (Quotas(queued_runs=1), 4, 1, ("queued_runs", 1, 1)),
    ],
)
def test_run_quotas(
    quotas: Quotas, running: int, queued: int, refused: tuple[str, int, int] | None
) -> None:
    if refused is None:
        check_runs(quotas, "a", running=running, queued=queued, slots=4)
        return
    with pytest.raises(QuotaExceeded) as caught:
        check_runs(quotas, "a", running=running, queued=queued, slots=4)
    error = caught.value
    assert (error.quota, error.limit, error.used) == refused
    assert error.code == "quota_exceeded" and error.retry_after
    assert f"{refused[0]} = {refused[1]}" in error.message and "'a'" in error.message


def test_session_quota() -> None:
    check_sessions(Quotas(), "a", live=100)
    check_sessions(Quotas(concurrent_sessions=2), "a", live=1)
    with pytest.raises(QuotaExceeded) as caught:
        check_sessions(Quotas(concurrent_sessions=2), "a", live=2)
    assert (caught.value.quota, caught.value.limit, caught.value.used) == (
        "concurrent_sessions",
        2,
        2,
    )


def test_tenant_labels_are_bounded() -> None:
    metrics = ServiceMetrics()
    names = [f"t{n}" for n in range(MAX_TENANT_LABELS)]
    assert [metrics.tenant_label(name) for name in names] == names
    assert metrics.tenant_label("one-more") == OTHER_TENANTS
    assert metrics.tenant_label("t0") == "t0"  # a tenant already labelled keeps its name


def test_storage_quota_counts_what_is_held_and_what_comes() -> None:
    check_storage(None, "a", used=10**12, adding=10**12)
    check_storage(100, "a", used=60, adding=40)
    with pytest.raises(QuotaExceeded) as caught:
        check_storage(100, "a", used=60, adding=41)
    error = caught.value
    assert (error.quota, error.limit, error.used, error.retry_after) == (
        "storage_bytes",
        100,
        60,
        None,
    )
