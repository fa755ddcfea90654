"""How a run's status is decided (executor/core.py `classify`): every path."""

from __future__ import annotations

from typing import Any

import pytest

from ai_data_agent.executor.backend import ExitState
from ai_data_agent.executor.core import _Transcript, classify
from ai_data_agent.models import RunStatus

CLEAN_EXIT = ExitState(exit_code=0, oom_killed=False)


def transcript(
    result: dict[str, Any] | None = None,
    *,
    deadline_hit: str | None = None,
    runner_stderr: bytes = b"",
) -> _Transcript:
    t = _Transcript(stdout_limit=1024, stderr_limit=1024)
    t.result = result
    t.deadline_hit = deadline_hit
    t.runner_stderr += runner_stderr
    return t


def frame(**parts: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "k": "result",
        "install": {"ok": True},
        "verify": {"ok": True},
        "execute": {"exit_code": 0},
    }
    base.update(parts)
    return base


def test_succeeded() -> None:
    assert classify(transcript(frame()), CLEAN_EXIT) == (RunStatus.SUCCEEDED, None)


@pytest.mark.parametrize("code", [1, 2, 255])
def test_failed(code: int) -> None:
    result = frame(execute={"exit_code": code})
    assert classify(transcript(result), CLEAN_EXIT) == (RunStatus.FAILED, None)


def test_killed_by_a_signal_without_timeout_is_failed() -> None:
    result = frame(execute={"exit_code": None, "signal": 11})
    assert classify(transcript(result), CLEAN_EXIT)[0] is RunStatus.FAILED


def test_no_execute_section_is_failed() -> None:
    assert classify(transcript(frame(execute=None)), CLEAN_EXIT)[0] is RunStatus.FAILED


def test_cancelled() -> None:
    status, error = classify(transcript(frame(), deadline_hit="cancelled"), CLEAN_EXIT)
    assert (status, error) == (RunStatus.CANCELLED, "cancelled by request")


def test_cancelled_wins_over_oom() -> None:
    oom = ExitState(exit_code=137, oom_killed=True)
    assert classify(transcript(None, deadline_hit="cancelled"), oom)[0] is RunStatus.CANCELLED


def test_stream_budget() -> None:
    status, error = classify(transcript(None, deadline_hit="stream"), CLEAN_EXIT)
    assert status is RunStatus.OUTPUT_EXCEEDED
    assert error is not None and "stream" in error


@pytest.mark.parametrize("phase", ["starting", "installing"])
def test_deadline_before_ready_is_install_failed(phase: str) -> None:
    status, error = classify(transcript(None, deadline_hit=phase), CLEAN_EXIT)
    assert status is RunStatus.INSTALL_FAILED
    assert error == "requirements did not install within the install timeout"


@pytest.mark.parametrize("phase", ["ready", "running", "collecting"])
def test_deadline_after_ready_is_timed_out(phase: str) -> None:
    status, error = classify(transcript(None, deadline_hit=phase), CLEAN_EXIT)
    assert status is RunStatus.TIMED_OUT
    assert error == f"killed at the deadline (phase {phase})"


def test_oom_killed_container() -> None:
    oom = ExitState(exit_code=137, oom_killed=True)
    status, error = classify(transcript(None), oom)
    assert (status, error) == (RunStatus.MEMORY_EXCEEDED, "the memory limit was reached")


def test_oom_seen_by_the_runner_with_sigkill() -> None:
    result = frame(execute={"exit_code": None, "signal": 9}, oom_kills=1)
    assert classify(transcript(result), CLEAN_EXIT)[0] is RunStatus.MEMORY_EXCEEDED


@pytest.mark.parametrize(
    "execute",
    [{"exit_code": None, "signal": 9}, {"exit_code": 1}],
)
def test_no_oom_kills_no_memory_status(execute: dict[str, Any]) -> None:
    result = frame(execute=execute, oom_kills=0)
    assert classify(transcript(result), CLEAN_EXIT)[0] is RunStatus.FAILED


def test_oom_kills_not_an_int_are_ignored() -> None:
    result = frame(execute={"exit_code": None, "signal": 9}, oom_kills="1")
    assert classify(transcript(result), CLEAN_EXIT)[0] is RunStatus.FAILED


def test_no_result_is_an_error_with_exit_code_and_stderr_tail() -> None:
    t = transcript(None, runner_stderr=b"x" * 5000 + b"\nRuntimeError: broke\n")
    status, error = classify(t, ExitState(exit_code=1, oom_killed=False))
    assert status is RunStatus.ERROR
    assert error is not None
    assert error.startswith("the sandbox ended without a result (container exit code 1): ")
    assert error.endswith("RuntimeError: broke")
    assert len(error) < 2100


def test_no_result_and_no_stderr() -> None:
    status, error = classify(transcript(None), ExitState(exit_code=None, oom_killed=False))
    assert status is RunStatus.ERROR
    assert error == "the sandbox ended without a result (container exit code None)"


def test_runner_error() -> None:
    result = frame(error="network interfaces ['eth0'] still attached")
    status, error = classify(transcript(result), CLEAN_EXIT)
    assert (status, error) == (RunStatus.ERROR, "network interfaces ['eth0'] still attached")


def test_runner_error_is_bounded() -> None:
    status, error = classify(transcript(frame(error="e" * 10_000)), CLEAN_EXIT)
    assert status is RunStatus.ERROR
    assert error is not None and len(error) == 2000


def test_install_failed() -> None:
    result = frame(install={"ok": False, "exit_code": 1})
    assert classify(transcript(result), CLEAN_EXIT) == (
        RunStatus.INSTALL_FAILED,
        "pip install failed",
    )


def test_install_timed_out() -> None:
    result = frame(install={"ok": False, "timed_out": True})
    assert classify(transcript(result), CLEAN_EXIT) == (
        RunStatus.INSTALL_FAILED,
        "install timed out",
    )


def test_install_section_missing_is_install_failed() -> None:
    result = frame(install=None)
    assert classify(transcript(result), CLEAN_EXIT)[0] is RunStatus.INSTALL_FAILED


def test_installed_but_not_found() -> None:
    result = frame(verify={"ok": False, "missing": ["pandas", "numpy"]})
    status, error = classify(transcript(result), CLEAN_EXIT)
    assert status is RunStatus.INSTALL_FAILED
    assert error == "installed but not found in the run's environment: pandas, numpy"


def test_timed_out_in_the_runner() -> None:
    result = frame(execute={"exit_code": None, "signal": 9, "timed_out": True})
    status, error = classify(transcript(result), CLEAN_EXIT)
    assert (status, error) == (RunStatus.TIMED_OUT, "the code ran past its timeout")


def test_output_exceeded() -> None:
    result = frame(execute={"exit_code": None, "signal": 9, "output_exceeded": True})
    status, error = classify(transcript(result), CLEAN_EXIT)
    assert (status, error) == (RunStatus.OUTPUT_EXCEEDED, "output passed its cap")


def test_truncated_output_alone_is_still_success() -> None:
    result = frame(execute={"exit_code": 0, "stdout_truncated": True})
    assert classify(transcript(result), CLEAN_EXIT)[0] is RunStatus.SUCCEEDED


def test_malformed_sections_do_not_crash() -> None:
    result = {"k": "result", "install": "ok", "verify": [], "execute": 0}
    assert classify(transcript(result), CLEAN_EXIT)[0] is RunStatus.INSTALL_FAILED
