"""The warm pool per profile in ``/metrics`` and ``/readyz`` (fake executor, a real pool).

The pool's profiles are set up as its refill thread would leave them (no
thread runs: a profile added through `Sizing` starts nothing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from service_fakes import FakeExecutor, make_settings, running_service

from ai_data_agent.executor import WarmPool
from ai_data_agent.executor.backend import Sandbox
from ai_data_agent.executor.sizing import Idle
from ai_data_agent.executor.spec import ContainerSpec, build_spec
from ai_data_agent.executor.warm import WarmReport, Warmth
from ai_data_agent.limits import default_limits

pytestmark = pytest.mark.anyio

PANDAS = Warmth(("/opt/ai-data-agent/envs/ab12cd34ef56aa",))


@dataclass
class IdleSandbox:
    container_id: str


def sample(metrics: str, name: str, profile: str, preimported: str) -> float:
    """The value of ``name`` for one profile in a Prometheus text answer."""
    pattern = rf'^{name}\{{preimported="{preimported}",profile="{profile}"\}} (\S+)$'
    found = re.search(pattern, metrics, re.MULTILINE)
    assert found is not None, f"no {name} of {profile} in:\n{metrics}"
    return float(found.group(1))


async def test_the_pool_per_profile_is_in_metrics_and_readyz(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    executor = FakeExecutor()
    pool = WarmPool(executor.backend, size=2, ttl_s=300)
    executor.pool = pool

    def make_spec(pool_id: str) -> ContainerSpec:
        limits = default_limits(settings)
        return build_spec(
            settings, limits, image="img", run_id=pool_id, controller_id="c", needs_install=False
        )

    plain = pool.sizing.add(make_spec, Warmth())
    warm = pool.sizing.add(make_spec, PANDAS, 1)
    warm.warmed(WarmReport(k="warm", imported=["pandas"], rss_kb=90 * 1024))
    for n, profile in enumerate([plain, plain, warm]):
        profile.idle.append(Idle(cast(Sandbox, IdleSandbox(f"c{n}")), 0.0))
    spec = make_spec("run")
    assert pool.take(spec, PANDAS) is not None  # a pre-imported hand-out
    assert pool.take(spec, PANDAS) is not None  # none left there: a miss, then a plain one
    async with running_service(settings, executor) as svc:
        metrics = (await svc.client.get("/metrics")).text
        ready = await svc.client.get("/readyz")

    assert sample(metrics, "ai_data_agent_pool_idle", "plain", "false") == 1
    assert sample(metrics, "ai_data_agent_pool_idle", "ab12cd34ef56", "true") == 0
    assert sample(metrics, "ai_data_agent_pool_target", "ab12cd34ef56", "true") == 2
    assert sample(metrics, "ai_data_agent_pool_handouts_total", "ab12cd34ef56", "true") == 1
    assert sample(metrics, "ai_data_agent_pool_misses_total", "ab12cd34ef56", "true") == 1
    assert sample(metrics, "ai_data_agent_pool_handouts_total", "plain", "false") == 1
    assert sample(metrics, "ai_data_agent_pool_misses_total", "plain", "false") == 0
    assert ready.status_code == 200, ready.text
    detail = ready.json()["checks"]["warm pool"]
    assert "plain: 1/2 idle" in detail
    assert "ab12cd34ef56 (pandas): 0/2 idle, 90 MB each, 1 taken, 1 missed" in detail


async def test_without_a_pool_readyz_says_so_and_metrics_have_no_pool(tmp_path: Path) -> None:
    async with running_service(make_settings(tmp_path), FakeExecutor()) as svc:
        metrics = (await svc.client.get("/metrics")).text
        ready = (await svc.client.get("/readyz")).json()

    assert "ai_data_agent_pool_" not in metrics
    assert ready["checks"]["warm pool"].startswith("off (pool_size 0)")
