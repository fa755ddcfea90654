"""How a run's status is decided (executor/outcome.py `classify`): every path."""

from __future__ import annotations

from typing import Any

import pytest

from ai_data_agent.executor.artifacts import ArtifactCollector
from ai_data_agent.executor.backend import ExitState
from ai_data_agent.executor.conversation import Transcript
from ai_data_agent.executor.frames import ResultFrame, parse_frame
from ai_data_agent.executor.outcome import classify
from ai_data_agent.executor.output import OutputBuffer
from ai_data_agent.models import RunStatus

CLEAN_EXIT = ExitState(exit_code=0, oom_killed=False)


def transcript(
    result: dict[str, Any] | None = None,
    *,
    deadline_hit: str | None = None,
    runner_stderr: bytes = b"",
    exit_state: ExitState = CLEAN_EXIT,
) -> Transcript:
    t = Transcript(OutputBuffer(1024), OutputBuffer(1024), ArtifactCollector(None, 0, 0))
    parsed = parse_frame(result) if result is not None else None
    assert parsed is None or isinstance(parsed, ResultFrame)
    t.result = parsed
    t.deadline_hit = deadline_hit
    t.runner_stderr += runner_stderr
    t.exit_state = exit_state
    return t


def verdict(t: Transcript) -> tuple[RunStatus, str | None]:
    return classify(t, install_timeout_s=300)


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
    assert verdict(transcript(frame())) == (RunStatus.SUCCEEDED, None)


@pytest.mark.parametrize("code", [1, 2, 255])
def test_failed(code: int) -> None:
    result = frame(execute={"exit_code": code})
    assert verdict(transcript(result)) == (RunStatus.FAILED, None)


def test_killed_by_a_signal_without_timeout_is_failed() -> None:
    result = frame(execute={"exit_code": None, "signal": 11})
    assert verdict(transcript(result))[0] is RunStatus.FAILED


def test_no_execute_section_is_failed() -> None:
    assert verdict(transcript(frame(execute=None)))[0] is RunStatus.FAILED


def test_cancelled() -> None:
    status, error = verdict(transcript(frame(), deadline_hit="cancelled"))
    assert (status, error) == (RunStatus.CANCELLED, "cancelled by request")


def test_cancelled_wins_over_oom() -> None:
    oom = ExitState(exit_code=137, oom_killed=True)
    assert (
        verdict(transcript(None, deadline_hit="cancelled", exit_state=oom))[0]
        is RunStatus.CANCELLED
    )


def test_stream_budget() -> None:
    status, error = verdict(transcript(None, deadline_hit="stream"))
    assert status is RunStatus.OUTPUT_EXCEEDED
    assert error is not None and "stream" in error


@pytest.mark.parametrize("phase", ["starting", "installing"])
def test_deadline_before_ready_is_install_failed(phase: str) -> None:
    status, error = verdict(transcript(None, deadline_hit=phase))
    assert status is RunStatus.INSTALL_FAILED
    assert error == "requirements did not install within the install timeout"


@pytest.mark.parametrize("phase", ["ready", "running", "collecting"])
def test_deadline_after_ready_is_timed_out(phase: str) -> None:
    status, error = verdict(transcript(None, deadline_hit=phase))
    assert status is RunStatus.TIMED_OUT
    assert error == f"killed at the deadline (phase {phase})"


def test_oom_killed_container() -> None:
    oom = ExitState(exit_code=137, oom_killed=True)
    status, error = verdict(transcript(None, exit_state=oom))
    assert (status, error) == (RunStatus.MEMORY_EXCEEDED, "the memory limit was reached")


def test_oom_seen_by_the_runner_with_sigkill() -> None:
    result = frame(execute={"exit_code": None, "signal": 9}, oom_kills=1)
    assert verdict(transcript(result))[0] is RunStatus.MEMORY_EXCEEDED


@pytest.mark.parametrize(
    "execute",
    [{"exit_code": None, "signal": 9}, {"exit_code": 1}],
)
def test_no_oom_kills_no_memory_status(execute: dict[str, Any]) -> None:
    result = frame(execute=execute, oom_kills=0)
    assert verdict(transcript(result))[0] is RunStatus.FAILED


def test_a_result_with_a_field_of_the_wrong_type_is_no_result() -> None:
    result = frame(execute={"exit_code": None, "signal": 9}, oom_kills="1")
    assert parse_frame(result) is None
    assert verdict(transcript(result))[0] is RunStatus.ERROR


def test_no_result_is_an_error_with_exit_code_and_stderr_tail() -> None:
    t = transcript(
        None,
        runner_stderr=b"x" * 5000 + b"\nRuntimeError: broke\n",
        exit_state=ExitState(exit_code=1, oom_killed=False),
    )
    status, error = verdict(t)
    assert status is RunStatus.ERROR
    assert error is not None
    assert error.startswith("the sandbox ended without a result (container exit code 1): ")
    assert error.endswith("RuntimeError: broke")
    assert len(error) < 2100


def test_no_result_and_no_stderr() -> None:
    status, error = verdict(
        transcript(None, exit_state=ExitState(exit_code=None, oom_killed=False))
    )
    assert status is RunStatus.ERROR
    assert error == "the sandbox ended without a result (container exit code None)"


def test_runner_error() -> None:
    result = frame(error="network interfaces ['eth0'] still attached")
    status, error = verdict(transcript(result))
    assert (status, error) == (RunStatus.ERROR, "network interfaces ['eth0'] still attached")


def test_runner_error_is_bounded() -> None:
    status, error = verdict(transcript(frame(error="e" * 10_000)))
    assert status is RunStatus.ERROR
    assert error is not None and len(error) == 2000


def test_install_failed_quotes_the_installer() -> None:
    log = "Collecting x\nERROR: pip exploded in an unknown way\n"
    result = frame(install={"ok": False, "exit_code": 1, "installer": "pip", "log_tail": log})
    assert verdict(transcript(result)) == (
        RunStatus.INSTALL_FAILED,
        "pip install failed: ERROR: pip exploded in an unknown way",
    )


def test_install_timed_out() -> None:
    result = frame(install={"ok": False, "timed_out": True, "installer": "uv"})
    assert verdict(transcript(result)) == (
        RunStatus.INSTALL_FAILED,
        "uv did not finish within the install timeout (300 s)",
    )


def test_install_section_missing_is_an_error() -> None:
    result = frame(install=None)
    assert verdict(transcript(result))[0] is RunStatus.ERROR


def test_installed_but_not_found() -> None:
    result = frame(verify={"ok": False, "missing": ["pandas", "numpy"]})
    status, error = verdict(transcript(result))
    assert status is RunStatus.INSTALL_FAILED
    assert error == "installed but not found in the run's environment: pandas, numpy"


def test_timed_out_in_the_runner() -> None:
    result = frame(execute={"exit_code": None, "signal": 9, "timed_out": True})
    status, error = verdict(transcript(result))
    assert (status, error) == (RunStatus.TIMED_OUT, "the code ran past its timeout")


def test_output_exceeded() -> None:
    result = frame(execute={"exit_code": None, "signal": 9, "output_exceeded": True})
    status, error = verdict(transcript(result))
    assert (status, error) == (RunStatus.OUTPUT_EXCEEDED, "output passed its cap")


def test_truncated_output_alone_is_still_success() -> None:
    result = frame(execute={"exit_code": 0, "stdout_truncated": True})
    assert verdict(transcript(result))[0] is RunStatus.SUCCEEDED


def test_malformed_sections_make_a_malformed_result() -> None:
    result = {"k": "result", "install": "ok", "verify": [], "execute": 0}
    assert verdict(transcript(result))[0] is RunStatus.ERROR
