"""`Sizing`: which pooled sandbox a run gets, how many each profile keeps, the memory budget.

Pure bookkeeping under a fake clock: no threads, no sandboxes started.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import pytest

from ai_data_agent.executor.backend import Sandbox
from ai_data_agent.executor.sizing import DEMAND_WINDOW_S, Idle, Sizing
from ai_data_agent.executor.spec import ContainerSpec, build_spec
from ai_data_agent.executor.warm import WarmReport, Warmth
from ai_data_agent.limits import default_limits
from ai_data_agent.settings import Settings

SETTINGS = Settings()
PANDAS = Warmth(("/opt/ai-data-agent/envs/pandas",))
POLARS = Warmth(("/opt/ai-data-agent/envs/polars",))
MB = 1024


def make_spec(pool_id: str) -> ContainerSpec:
    limits = default_limits(SETTINGS)
    return build_spec(
        SETTINGS, limits, image="fake", run_id=pool_id, controller_id="c", needs_install=False
    )


PROFILE = make_spec("pool").profile()


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeSandbox:
    container_id: str


def idle(name: str, born: float) -> Idle:
    return Idle(cast(Sandbox, FakeSandbox(name)), born)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def sizing(clock: Clock, *, size: int = 2, budget_mb: int = 1024, recent: int = 2) -> Sizing:
    return Sizing(size, budget_mb * MB, recent, clock)


def fill(s: Sizing, clock: Clock) -> None:
    """Start (instantly) every sandbox `needy` asks for."""
    for n in range(100):
        profile = s.needy()
        if profile is None:
            return
        profile.idle.append(idle(f"{profile.warmth.name}-{n}", clock.now))
    raise AssertionError("needy never said enough")


def test_a_run_of_another_set_gets_a_plain_sandbox_never_another_sets(clock: Clock) -> None:
    s = sizing(clock)
    s.add(make_spec, Warmth())
    s.add(make_spec, PANDAS, floor=1)
    fill(s, clock)

    other = s.pick(PROFILE, POLARS)
    assert other is not None and other.sandbox.container_id.startswith("plain")
    mine = s.pick(PROFILE, PANDAS)
    assert mine is not None and mine.sandbox.container_id.startswith("pandas")
    assert s.pick(PROFILE, PANDAS) is not None  # the last plain one: pandas has none left
    assert s.pick(PROFILE, None) is None  # nothing idle now; each sandbox was given once


def test_a_failed_import_keeps_the_profile_empty(clock: Clock) -> None:
    s = sizing(clock)
    profile = s.add(make_spec, PANDAS, floor=1)
    assert not profile.warmed(WarmReport(k="warm", error="pandas: ImportError", rss_kb=9 * MB))
    assert s.target(profile) == 0 and s.needy() is None


def test_demand_grows_a_prewarmed_profile_up_to_size_and_it_shrinks_back(clock: Clock) -> None:
    s = sizing(clock, size=3)
    profile = s.add(make_spec, PANDAS, floor=1)
    assert s.target(profile) == 1
    for _ in range(5):
        s.pick(PROFILE, PANDAS)  # misses count as demand too
    assert s.target(profile) == 3  # at most size

    fill(s, clock)
    clock.now += DEMAND_WINDOW_S + 1
    assert s.target(profile) == 1
    assert len(s.recycle(ttl_s=3600)) == 2 and len(profile.idle) == 1


def test_the_memory_budget_holds_under_a_burst(clock: Clock) -> None:
    s = sizing(clock, size=8, budget_mb=500)
    plain = s.add(make_spec, Warmth())
    warm = s.add(make_spec, PANDAS, floor=1)
    warm.warmed(WarmReport(k="warm", imported=["pandas"], rss_kb=120 * MB))
    plain.warmed(WarmReport(k="warm", rss_kb=30 * MB))
    for _ in range(20):  # a burst of pandas runs
        s.pick(PROFILE, PANDAS)
    fill(s, clock)

    assert s.used_kb() <= 500 * MB
    assert len(warm.idle) >= 1 and len(plain.idle) >= 1

    warm.rss_kb = 300 * MB  # measured bigger than thought: idle ones beyond the budget go
    doomed = s.recycle(ttl_s=3600)
    assert doomed and s.used_kb() <= 500 * MB


def test_a_set_asked_for_twice_becomes_a_profile_and_the_oldest_recent_one_goes(
    clock: Clock,
) -> None:
    s = sizing(clock, recent=1)
    s.add(make_spec, Warmth())
    assert s.pick(PROFILE, POLARS) is None
    assert [p.warmth for p in s.profiles] == [Warmth()]
    s.pick(PROFILE, POLARS)
    assert [p.warmth for p in s.profiles] == [Warmth(), POLARS]
    assert s.target(s.profiles[1]) == 2  # two asks within the window

    clock.now += 1
    s.pick(PROFILE, PANDAS)
    s.pick(PROFILE, PANDAS)
    assert [p.warmth for p in s.profiles] == [Warmth(), PANDAS]  # one recent set at most


def test_each_profile_has_a_name_of_its_own_and_says_whether_it_is_pre_imported(
    clock: Clock,
) -> None:
    s = sizing(clock)
    s.add(make_spec, Warmth())
    s.add(make_spec, PANDAS)

    def with_data(pool_id: str) -> ContainerSpec:  # another plain profile: datasets mounted
        limits = default_limits(SETTINGS).model_copy(update={"memory_mb": 512})
        return build_spec(
            SETTINGS, limits, image="fake", run_id=pool_id, controller_id="c", needs_install=False
        )

    s.add(with_data, Warmth())
    s.add(make_spec, Warmth())  # known: no new profile

    states = [(state.name, state.preimported) for state in s.states()]
    assert states[:2] == [("plain", False), ("pandas", True)]
    assert len(states) == 3 and states[2][0].startswith("plain-") and not states[2][1]
    assert len({name for name, _ in states}) == 3
