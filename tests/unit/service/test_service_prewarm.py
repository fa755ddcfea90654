"""Prewarming requirement sets at the daemon's start (service/prewarm.py)."""

from __future__ import annotations

from ai_data_agent.errors import ExecutorError
from ai_data_agent.models import RunRequest, RunResult, RunStatus
from ai_data_agent.service.prewarm import Prewarmer
from ai_data_agent.settings import Settings


class FakeExecutor:
    """Runs ``pass`` with a set: fails to install ``nope``, raises for ``explode``."""

    def __init__(self, cache: object | None = object()) -> None:
        self.env_cache = cache
        self.asked: list[list[str]] = []

    def run(self, request: RunRequest, *, run_id: str) -> RunResult:
        self.asked.append(request.requirements)
        assert request.code == "pass" and run_id.startswith("prewarm-")
        if request.requirements[0] == "explode":
            raise ExecutorError("engine gone", step="install")
        if request.requirements[0] == "nope":
            return RunResult(
                id=run_id,
                status=RunStatus.INSTALL_FAILED,
                error="no matching distribution: nope",
            )
        return RunResult(id=run_id, status=RunStatus.SUCCEEDED)


def wait(prewarm: Prewarmer) -> None:
    assert prewarm._thread is not None
    prewarm._thread.join(10)


def test_each_set_installs_in_turn_and_failures_are_reported() -> None:
    executor = FakeExecutor()
    settings = Settings(prewarm=[["pandas", "matplotlib"], ["nope"], ["explode"], ["numpy"]])
    prewarm = Prewarmer(settings, executor)  # type: ignore[arg-type]
    prewarm.start()
    wait(prewarm)
    assert executor.asked == [["pandas", "matplotlib"], ["nope"], ["explode"], ["numpy"]]
    check = prewarm.check()
    assert check.ok is True  # readiness never waits for it
    assert check.detail.startswith("2 of 4 set(s) ready")
    assert "failed nope: no matching distribution: nope" in check.detail
    assert "failed explode: engine gone" in check.detail


def test_nothing_to_do_without_sets_or_without_a_cache() -> None:
    idle = Prewarmer(Settings(), FakeExecutor())  # type: ignore[arg-type]
    idle.start()
    assert idle._thread is None and idle.check().detail == "0 of 0 set(s) ready"
    off = Prewarmer(Settings(prewarm=[["six"]]), FakeExecutor(None))  # type: ignore[arg-type]
    off.start()
    wait(off)
    assert "the environment cache is off" in off.check().detail
