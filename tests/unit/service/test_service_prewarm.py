"""Prewarming requirement sets at the daemon's start (service/prewarm.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.envcache import InstallFailure, Ready
from ai_data_agent.service.prewarm import Prewarmer
from ai_data_agent.settings import Settings


@dataclass
class Cache:
    fail: set[str] = field(default_factory=set)
    asked: list[list[str]] = field(default_factory=list)

    def get_or_install(self, requirements: list[str], image: str, run_id: str) -> Any:
        self.asked.append(requirements)
        if requirements[0] in self.fail:
            return InstallFailure(None, f"no matching distribution: {requirements[0]}")
        if requirements[0] == "explode":
            raise ExecutorError("engine gone", step="install")
        return Ready(env=None, hit=False)  # type: ignore[arg-type]


class Backend:
    def resolve_image(self) -> str:
        return "img"


class FakeExecutor:
    def __init__(self, cache: Cache | None) -> None:
        self.env_cache = cache
        self.backend = Backend()


def wait(prewarm: Prewarmer) -> None:
    assert prewarm._thread is not None
    prewarm._thread.join(10)


def test_each_set_installs_in_turn_and_failures_are_reported() -> None:
    cache = Cache(fail={"nope"})
    settings = Settings(prewarm=[["pandas", "matplotlib"], ["nope"], ["explode"], ["numpy"]])
    prewarm = Prewarmer(settings, FakeExecutor(cache))  # type: ignore[arg-type]
    prewarm.start()
    wait(prewarm)
    assert cache.asked == [["pandas", "matplotlib"], ["nope"], ["explode"], ["numpy"]]
    check = prewarm.check()
    assert check.ok is True  # readiness never waits for it
    assert check.detail.startswith("2 of 4 set(s) ready")
    assert "failed nope: no matching distribution: nope" in check.detail
    assert "failed explode: engine gone" in check.detail


def test_nothing_to_do_without_sets_or_without_a_cache() -> None:
    idle = Prewarmer(Settings(), FakeExecutor(Cache()))  # type: ignore[arg-type]
    idle.start()
    assert idle._thread is None and idle.check().detail == "0 of 0 set(s) ready"
    off = Prewarmer(Settings(prewarm=[["six"]]), FakeExecutor(None))  # type: ignore[arg-type]
    off.start()
    wait(off)
    assert "the environment cache is off" in off.check().detail
