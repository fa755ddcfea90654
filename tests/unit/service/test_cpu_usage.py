"""Tenants' CPU time: the sliding hour and its Retry-After, the SQLite ledger, the account
that charges and admits, the link's readings, and the host-side counter reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from ai_data_agent.errors import NotReady, QuotaExceeded
from ai_data_agent.executor.backend import Sandbox
from ai_data_agent.executor.docker.cpu import CpuReader
from ai_data_agent.executor.link import SandboxLink
from ai_data_agent.service.cpu_usage import CPU_WINDOW_S, CpuAccount, CpuStore, check_cpu, cpu_used
from ai_data_agent.service.metrics import ServiceMetrics
from ai_data_agent.tenant_models import Quotas

NOW = 1_000_000.0
ONE = Quotas(cpu_seconds_per_hour=1)


def refusal(quotas: Quotas, charges: list[tuple[float, float]]) -> QuotaExceeded:
    with pytest.raises(QuotaExceeded) as caught:
        check_cpu(quotas, "team-a", charges, now=NOW)
    return caught.value


def test_only_the_last_hour_counts() -> None:
    charges = [(NOW - CPU_WINDOW_S - 1, 5.0), (NOW - CPU_WINDOW_S, 5.0), (NOW - 10, 0.25)]
    assert cpu_used(charges, now=NOW) == 0.25
    check_cpu(ONE, "team-a", charges, now=NOW)  # 0.25 < 1: admitted
    check_cpu(Quotas(), "team-a", [(NOW, 1e9)], now=NOW)  # no quota: never refused


def test_at_the_limit_is_refused_with_the_quota_its_limit_and_use() -> None:
    error = refusal(ONE, [(NOW - 100, 0.5), (NOW - 50, 0.5)])
    assert (error.code, error.quota, error.limit, error.used) == (
        "quota_exceeded",
        "cpu_seconds_per_hour",
        1,
        1.0,
    )
    assert error.http_status == 429


def test_retry_after_is_when_enough_old_use_has_aged_out() -> None:
    # 0.5 + 0.75 + 0.5 = 1.75; dropping the oldest (0.5) leaves 1.25, still >= 1; dropping the
    # next (0.75) leaves 0.5 < 1: retry when the charge of NOW - 1000 leaves the hour.
    charges = [(NOW - 1000, 0.75), (NOW - 3000, 0.5), (NOW - 5, 0.5)]
    assert refusal(ONE, charges).retry_after == CPU_WINDOW_S - 1000
    # One charge over the limit on its own: it must age out entirely.
    assert refusal(ONE, [(NOW - 10, 3.0)]).retry_after == CPU_WINDOW_S - 10


def test_retry_after_is_at_least_a_second_and_an_hour_for_a_limit_of_0() -> None:
    assert refusal(ONE, [(NOW - CPU_WINDOW_S + 0.2, 2.0)]).retry_after == 1
    assert refusal(Quotas(cpu_seconds_per_hour=0), []).retry_after == CPU_WINDOW_S


def test_the_sqlite_ledger_keeps_charges_by_tenant_and_prunes_old_ones(tmp_path: Path) -> None:
    store = CpuStore(tmp_path / "tenants.sqlite3")
    store.open()
    try:
        store.charge("team-a", 1.0, at=NOW - 3 * CPU_WINDOW_S, object_id="old")
        store.charge("team-a", 0.5, at=NOW - 10, object_id="r1")
        store.charge("team-b", 2.0, at=NOW - 5, object_id="r2")
        assert store.charges("team-a", since=NOW - CPU_WINDOW_S) == [(NOW - 10, 0.5)]
        assert store.charges("team-a", since=0) == [(NOW - 10, 0.5)]  # the old row is gone
        assert store.charges("team-b", since=0) == [(NOW - 5, 2.0)]
    finally:
        store.close()


def test_the_account_charges_counts_and_admits(tmp_path: Path) -> None:
    store = CpuStore(tmp_path / "tenants.sqlite3")
    store.open()
    metrics = ServiceMetrics()
    clock = [NOW]
    account = CpuAccount(store, metrics, clock=lambda: clock[0])
    try:
        account.charge("team-a", None, object_id="r0")  # not measured: nothing
        account.admit("team-a", ONE)
        account.charge("team-a", 1.25, object_id="r1")
        with pytest.raises(QuotaExceeded) as caught:
            account.admit("team-a", ONE, run=True)
        assert caught.value.retry_after == CPU_WINDOW_S
        clock[0] += CPU_WINDOW_S  # the charge has aged out
        account.admit("team-a", ONE)
        text = metrics.render().decode()
        assert 'ai_data_agent_tenant_cpu_seconds_total{tenant="team-a"} 1.25' in text
        assert 'quota_refusals_total{quota="cpu_seconds_per_hour",tenant="team-a"} 1.0' in text
        assert 'runs_rejected_total{reason="quota_exceeded"} 1.0' in text
    finally:
        store.close()
    with pytest.raises(NotReady):  # a ledger that cannot be read: not "unlimited"
        account.admit("team-a", ONE)
    account.charge("team-a", 1.0, object_id="r2")  # logged, never raised


class CountingSandbox:
    """A sandbox whose CPU counter reads from a list (None: unreadable)."""

    def __init__(self, readings: list[int | None]) -> None:
        self.readings = readings

    def cpu_ns(self) -> int | None:
        return self.readings.pop(0)


def test_the_link_charges_deltas_from_its_mark() -> None:
    sandbox = CountingSandbox([2_500_000_000, None, 4_000_000_000, 4_000_000_000])
    link = SandboxLink(cast(Sandbox, sandbox), "t", "s1", cpu_mark_ns=1_000_000_000)
    assert link.cpu_used_s() == 1.5
    assert link.cpu_used_s() is None  # unreadable: the next reading covers it
    assert link.cpu_used_s() == 1.5
    assert link.cpu_used_s() == 0.0


def test_a_link_without_a_mark_charges_only_after_its_first_reading() -> None:
    sandbox = CountingSandbox([7_000_000_000, 7_250_000_000])
    link = SandboxLink(cast(Sandbox, sandbox), "t", "s1", cpu_mark_ns=None)
    assert link.cpu_used_s() is None
    assert link.cpu_used_s() == 0.25


class FakeApi:
    def __init__(self, stats: dict[str, Any] | Exception) -> None:
        self._stats = stats

    def stats(self, container_id: str, *, stream: bool, one_shot: bool) -> dict[str, Any]:
        assert (stream, one_shot) == (False, True)
        if isinstance(self._stats, Exception):
            raise self._stats
        return self._stats


def test_the_reader_takes_the_cgroup_file_first_then_the_engine(tmp_path: Path) -> None:
    v1 = tmp_path / "cpuacct/docker/abc"
    v1.mkdir(parents=True)
    (v1 / "cpuacct.usage").write_text("123456789\n")
    v2 = tmp_path / "system.slice/docker-def.scope"
    v2.mkdir(parents=True)
    (v2 / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\n")
    engine = FakeApi({"cpu_stats": {"cpu_usage": {"total_usage": 42}}})
    reader = CpuReader(engine, root=tmp_path)
    assert reader.usage_ns("abc") == 123456789
    assert reader.usage_ns("def") == 1_500_000
    assert reader.usage_ns("other") == 42  # no cgroup file here: the engine's figure


def test_the_reader_gives_none_for_a_stopped_container_or_an_engine_error() -> None:
    stopped = FakeApi({"cpu_stats": {"cpu_usage": {"total_usage": 0}}})
    assert CpuReader(stopped, root=None).usage_ns("abc") is None
    assert CpuReader(FakeApi(OSError("gone")), root=None).usage_ns("abc") is None
    assert CpuReader(FakeApi({"cpu_stats": {}}), root=None).usage_ns("abc") is None
