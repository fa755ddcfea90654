"""Prometheus metrics of one daemon, in a registry of its own (so tests can build many apps).

    metrics = ServiceMetrics()
    metrics.observe_finished(RunStatus.SUCCEEDED, result)
    proxy.log.add_sink(metrics.egress.observe)     # every egress connection
    text = metrics.render()          # for GET /metrics

Queue depth and the running count are read from the dispatcher when scraped
(`bind_gauges`), so they can never drift from the truth; so is the warm pool,
per profile (`bind_pool`: idle and target sandboxes, hand-outs and misses,
labelled by profile and whether it is pre-imported). The pool's profiles are
bounded by its settings: the plain one, one per prewarm set, at most
``pool_recent_sets`` recent sets and ``pool_data_profiles`` dataset mount sets.
Runs, CPU seconds and quota refusals are counted per tenant too, under at most
`MAX_TENANT_LABELS` tenant names (tenants are made by an admin; past the bound,
they count as ``_other``), so a scrape stays small however many tenants come and go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ai_data_agent.egress.log import EgressEvent
from ai_data_agent.errors import QueueFull, QuotaExceeded
from ai_data_agent.executor.sizing import ProfileState
from ai_data_agent.models import RunResult, RunStatus

__all__ = ["CONTENT_TYPE", "EgressMetrics", "PoolMetrics", "ServiceMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Seconds: from sub-second hello-worlds to the 600 s timeout cap plus installs.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200)
MAX_TENANT_LABELS = 100  # distinct tenant label values per process
OTHER_TENANTS = "_other"  # the label of tenants past the bound (not a valid tenant name)


class EgressMetrics:
    """Connections through the egress proxy and their bytes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.connections = Counter(
            "ai_data_agent_egress_connections",
            "Connections through the egress proxy, allowed or refused, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.bytes = Counter(
            "ai_data_agent_egress_bytes",
            "Bytes through the egress proxy, by direction (out: from sandboxes).",
            ["direction"],
            registry=registry,
        )

    def observe(self, event: EgressEvent) -> None:
        """Count one connection (a sink of the proxy's `EgressLog`)."""
        self.connections.labels(outcome=event.outcome).inc()
        self.bytes.labels(direction="out").inc(event.bytes_out)
        self.bytes.labels(direction="in").inc(event.bytes_in)


class PoolMetrics(Collector):
    """The warm pool per profile, read from ``profiles`` at each scrape."""

    LABELS = ("profile", "preimported")

    def __init__(self, profiles: Callable[[], list[ProfileState]]) -> None:
        self._profiles = profiles

    def collect(self) -> Iterator[Metric]:
        labels = list(self.LABELS)
        idle = GaugeMetricFamily(
            "ai_data_agent_pool_idle", "Pooled sandboxes ready, by profile.", labels=labels
        )
        target = GaugeMetricFamily(
            "ai_data_agent_pool_target",
            "Pooled sandboxes a profile aims to keep (its demand, floor and budget).",
            labels=labels,
        )
        taken = CounterMetricFamily(
            "ai_data_agent_pool_handouts",
            "Runs and sessions that took a pooled sandbox, by profile.",
            labels=labels,
        )
        missed = CounterMetricFamily(
            "ai_data_agent_pool_misses",
            "Runs and sessions that asked a profile and found no sandbox ready.",
            labels=labels,
        )
        for profile in self._profiles():
            values = [profile.name, "true" if profile.preimported else "false"]
            idle.add_metric(values, profile.idle)
            target.add_metric(values, profile.target)
            taken.add_metric(values, profile.taken)
            missed.add_metric(values, profile.missed)
        yield from (idle, target, taken, missed)


class ServiceMetrics:
    """The daemon's counters, histograms and gauges."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.runs = Counter(
            "ai_data_agent_runs", "Runs that reached a terminal status.", ["status"], registry=r
        )
        self.rejected = Counter(
            "ai_data_agent_runs_rejected", "Submissions refused at once.", ["reason"], registry=r
        )
        self.tenant_runs = Counter(
            "ai_data_agent_tenant_runs",
            "Runs that reached a terminal status, by tenant.",
            ["tenant", "status"],
            registry=r,
        )
        self.quota_refusals = Counter(
            "ai_data_agent_quota_refusals",
            "Runs and sessions refused for a tenant's quota, by tenant and quota.",
            ["tenant", "quota"],
            registry=r,
        )
        self.tenant_cpu = Counter(
            "ai_data_agent_tenant_cpu_seconds",
            "CPU seconds of runs and cells (their containers' cgroups), by tenant.",
            ["tenant"],
            registry=r,
        )
        self._tenants: set[str] = set()
        self.install_seconds = Histogram(
            "ai_data_agent_run_install_seconds",
            "Time installing requirements.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.execute_seconds = Histogram(
            "ai_data_agent_run_execute_seconds",
            "Time running the user's code.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.total_seconds = Histogram(
            "ai_data_agent_run_total_seconds",
            "Time from container start to result.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "ai_data_agent_queue_depth", "Runs accepted and waiting for a worker.", registry=r
        )
        self.running = Gauge(
            "ai_data_agent_runs_running", "Runs in a container right now.", registry=r
        )
        self.reaped = Counter(
            "ai_data_agent_containers_reaped",
            "Sandbox containers removed by the startup sweep and the reaper.",
            registry=r,
        )
        self.sessions_active = Gauge(
            "ai_data_agent_sessions_active",
            "Sessions live now (each holds a container).",
            registry=r,
        )
        self.sessions_started = Counter(
            "ai_data_agent_sessions_started", "Sessions that started.", registry=r
        )
        self.sessions_ended = Counter(
            "ai_data_agent_sessions_ended", "Sessions that ended, by how.", ["status"], registry=r
        )
        self.cells = Counter(
            "ai_data_agent_cells", "Session cells that ended, by status.", ["status"], registry=r
        )
        self.kernel_restarts = Counter(
            "ai_data_agent_kernel_restarts",
            "Session kernels replaced (state lost: timeouts, crashes, memory, restarts).",
            registry=r,
        )
        self.checkpoints = Counter(
            "ai_data_agent_checkpoints", "Session checkpoints, by outcome.", ["outcome"], registry=r
        )
        self.checkpoint_bytes = Counter(
            "ai_data_agent_checkpoint_bytes", "Bytes of the checkpoints taken.", registry=r
        )
        self.restores = Counter(
            "ai_data_agent_restores", "Sessions resumed or forked, by state.", ["state"], registry=r
        )
        self.restore_lost = Counter(
            "ai_data_agent_restore_lost_names", "Variables not saved or not restored.", registry=r
        )
        self.retention_deleted = Counter(
            "ai_data_agent_records_deleted", "Run records removed by retention.", registry=r
        )
        self.egress = EgressMetrics(r)

    def bind_pool(self, profiles: Callable[[], list[ProfileState]]) -> None:
        """Report the warm pool's ``profiles`` at each scrape (once, by the daemon)."""
        self.registry.register(PoolMetrics(profiles))

    def bind_sessions(self, active: Callable[[], float]) -> None:
        self.sessions_active.set_function(active)

    def bind_gauges(self, queue_depth: Callable[[], float], running: Callable[[], float]) -> None:
        self.queue_depth.set_function(queue_depth)
        self.running.set_function(running)

    def tenant_label(self, tenant: str) -> str:
        """``tenant`` as a label value: its name, or `OTHER_TENANTS` past the bound."""
        if tenant not in self._tenants and len(self._tenants) >= MAX_TENANT_LABELS:
            return OTHER_TENANTS
        self._tenants.add(tenant)
        return tenant

    def observe_rejected(self, error: QueueFull, tenant: str) -> None:
        """Count a run refused for room, by its code (and a quota's, `observe_quota`)."""
        self.rejected.labels(reason=error.code or "queue_full").inc()
        if isinstance(error, QuotaExceeded):
            self.observe_quota(error, tenant)

    def observe_quota(self, error: QuotaExceeded, tenant: str) -> None:
        """Count a run or session refused for ``tenant``'s quota."""
        label = self.tenant_label(tenant)
        self.quota_refusals.labels(tenant=label, quota=error.quota or "unknown").inc()

    def observe_cpu(self, tenant: str, seconds: float) -> None:
        """Count CPU seconds charged to ``tenant`` (a run or cell that ended)."""
        self.tenant_cpu.labels(tenant=self.tenant_label(tenant)).inc(seconds)

    def observe_finished(
        self, status: RunStatus, result: RunResult | None, tenant: str | None = None
    ) -> None:
        """Count a terminal run (under its ``tenant`` too, when known); time it when a
        container ran (``result`` present)."""
        self.runs.labels(status=status.value).inc()
        if tenant is not None:
            self.tenant_runs.labels(tenant=self.tenant_label(tenant), status=status.value).inc()
        if result is not None:
            self.install_seconds.observe(result.timings.install_s)
            self.execute_seconds.observe(result.timings.execute_s)
            self.total_seconds.observe(result.timings.total_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
