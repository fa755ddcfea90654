"""The controller's own paths, against a scripted runner (`ScriptedBackend`).

Deadlines, floods, missing results and failing cleanup are what a well-behaved
runner never produces on cue; a script makes them fast and deterministic.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from fakes import ScriptedBackend, ScriptedSandbox, ScriptItem

from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.backend import STDERR
from ai_data_agent.executor.core import Executor, RunEvent
from ai_data_agent.models import PackageInfo, RunRequest, RunStatus
from ai_data_agent.settings import Settings
from tests.support.logs import LogLine

READY: ScriptItem = {"k": "phase", "phase": "ready"}
RUNNING: ScriptItem = {"k": "phase", "phase": "running"}
INSTALLING: ScriptItem = {"k": "phase", "phase": "installing"}


def result_frame(**overrides: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "k": "result",
        "protocol": 1,
        "install": {"ok": True, "duration_s": 0.5, "log_tail": "Successfully installed six-1.16.0"},
        "verify": {"ok": True, "packages": [{"name": "six", "version": "1.16.0"}]},
        "execute": {"exit_code": 0, "duration_s": 0.25, "timed_out": False},
        "environment": {"sandbox_dir": "/tmp/ai_data_agent_x", "uid": 1000},
        "sandbox_removed": True,
        "mismatch": [],
    }
    frame.update(overrides)
    return frame


def out(stream: str, text: str) -> ScriptItem:
    return {"k": "out", "s": stream, "d": text}


def test_a_scripted_run_builds_the_result() -> None:
    backend = ScriptedBackend(
        [READY], [RUNNING, out("stdout", "hi\n"), out("stderr", "warn\n"), result_frame()]
    )
    result = Executor(Settings(), backend=backend).run(RunRequest(code="x"))
    assert result.status is RunStatus.SUCCEEDED
    assert (result.stdout, result.stderr, result.exit_code) == ("hi\n", "warn\n", 0)
    assert result.install.packages == [PackageInfo(name="six", version="1.16.0")]
    assert result.timings.install_s == 0.5
    assert result.timings.execute_s == 0.25
    assert result.environment.uid == 1000
    assert result.environment.sandbox_removed is True


def test_network_detached_once_before_go_when_installing_without_network() -> None:
    backend = ScriptedBackend([INSTALLING, READY], [RUNNING, result_frame()])
    settings = Settings(install_mode="per_run")
    result = Executor(settings, backend=backend).run(RunRequest(code="x", requirements=["six"]))
    assert result.status is RunStatus.SUCCEEDED
    assert backend.specs[0].detach_network_before_code is True
    assert backend.started[0].calls == [
        "send:bundle",
        "send:job",
        "detach",
        "send:go",
        "kill",  # it holds after its result (its CPU read): stopped for its exit state
        "exit_state",
        "remove",
    ]


def test_a_held_runner_that_read_its_oom_count_is_let_go_after_its_cpu_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def cpu_ns(self: ScriptedSandbox) -> int:
        self.calls.append("cpu")
        return 10**9

    monkeypatch.setattr(ScriptedSandbox, "cpu_ns", cpu_ns)
    backend = ScriptedBackend([READY], [RUNNING, result_frame(oom_kills=0)], end_stream=True)
    result = Executor(Settings(), backend=backend).run(RunRequest(code="x"))
    assert result.status is RunStatus.SUCCEEDED
    # Its stdin stays open past "go" and closes once its CPU is read: it exits by itself,
    # and the container, stopped by then, is removed without a kill.
    calls = ["send:bundle", "send:job", "send:go", "cpu", "close_stdin", "remove"]
    assert backend.started[0].calls == calls


def test_network_kept_when_the_request_may_use_it() -> None:
    backend = ScriptedBackend([INSTALLING, READY], [RUNNING, result_frame()])
    settings = Settings(allow_network=True, install_mode="per_run")
    request = RunRequest(code="x", requirements=["six"], network=True)
    result = Executor(settings, backend=backend).run(request)
    assert result.status is RunStatus.SUCCEEDED
    assert backend.specs[0].network == "bridge"
    assert "detach" not in backend.started[0].calls


def test_job_carries_the_request_and_settings() -> None:
    backend = ScriptedBackend([READY], [RUNNING, result_frame()])
    settings = Settings(
        allow_network=True,
        stdout_limit_bytes=2048,
        output_policy="kill",
        pip_index_url="https://i/",
        install_mode="per_run",
    )
    request = RunRequest(
        code="print(1)", requirements=["Six>=1.0"], network=True, env={"A": "b"}, timeout_s=7
    )
    Executor(settings, backend=backend).run(request)
    (job,) = backend.started[0].jobs
    assert len(job["token"]) == 32
    assert job["code"] == "print(1)"
    assert job["requirements"] == [{"line": "Six>=1.0", "name": "Six", "optional": False}]
    assert job["timeout_s"] == 7
    assert job["network"] is True
    assert job["exec_env"] == {"A": "b"}
    assert job["stdout_limit"] == 2048
    assert job["output_policy"] == "kill"
    assert job["index_url"] == "https://i/"


def test_controller_deadline_while_running() -> None:
    backend = ScriptedBackend([READY], [RUNNING], end_stream=False)
    settings = Settings(allow_network=True, stop_grace_s=0)
    started = time.monotonic()
    result = Executor(settings, backend=backend).run(
        RunRequest(code="x", network=True, timeout_s=0.3)
    )
    assert time.monotonic() - started < 5
    assert result.status is RunStatus.TIMED_OUT
    assert result.error == "killed at the deadline (phase running)"
    calls = backend.started[0].calls
    assert calls.count("kill") == 1
    assert calls[-1] == "remove"


def test_stream_flood_is_cut_off(log_lines: list[LogLine]) -> None:
    settings = Settings(
        stdout_limit_bytes=1024,
        stderr_limit_bytes=1024,
        install_log_limit_bytes=1024,
        max_artifact_total_bytes=0,
    )
    noise = b"n" * 65535 + b"\n"
    backend = ScriptedBackend([noise] * 2000, end_stream=False)  # far past any budget
    result = Executor(settings, backend=backend).run(RunRequest(code="x"))
    assert result.status is RunStatus.OUTPUT_EXCEEDED
    assert result.error == "the sandbox's output stream exceeded its budget"
    assert backend.started[0].calls.count("kill") == 1
    assert any("killing it" in line.message for line in log_lines if line.level == "WARNING")
    assert any("unauthenticated line" in line.message for line in log_lines)


def test_no_result_frame_is_an_error_with_the_runner_stderr() -> None:
    crash = (STDERR, b"Traceback (most recent call last):\nRuntimeError: runner broke\n")
    backend = ScriptedBackend([READY], [RUNNING, crash], exit_code=1)
    result = Executor(Settings(), backend=backend).run(RunRequest(code="x"))
    assert result.status is RunStatus.ERROR
    assert result.error is not None
    assert result.error.startswith("the sandbox ended without a result (container exit code 1)")
    assert "RuntimeError: runner broke" in result.error


def test_runner_stderr_kept_is_bounded() -> None:
    flood = (STDERR, b"e" * 60_000)
    backend = ScriptedBackend([flood, flood, flood], exit_code=1)
    result = Executor(Settings(), backend=backend).run(RunRequest(code="x"))
    assert result.status is RunStatus.ERROR
    assert result.error is not None and len(result.error) < 2200


def test_forged_lines_and_bad_frames_are_ignored() -> None:
    backend = ScriptedBackend(
        [
            b"deadbeef " + b'{"k": "result", "execute": {"exit_code": 0}}\n',
            b'{"k": "out", "s": "stdout", "d": "forged"}\n',
            READY,
        ],
        [
            RUNNING,
            out("stdout", "real\n"),
            {"k": "out", "s": "elsewhere", "d": "x"},
            result_frame(),
        ],
    )
    result = Executor(Settings(), backend=backend).run(RunRequest(code="x"))
    assert result.status is RunStatus.SUCCEEDED
    assert result.stdout == "real\n"


def test_sandbox_logs_are_forwarded_with_a_safe_level(log_lines: list[LogLine]) -> None:
    backend = ScriptedBackend(
        [
            {"k": "log", "level": "WARNING", "msg": "Environment mismatch: HOME"},
            {"k": "log", "level": "CRITICAL", "msg": "escalated"},
            {"k": "log", "level": "nonsense", "msg": "odd"},
            READY,
        ],
        [RUNNING, result_frame()],
    )
    Executor(Settings(), backend=backend).run(RunRequest(code="x"))
    sandbox = {
        line.message: line.level for line in log_lines if line.message.startswith("sandbox:")
    }
    assert sandbox == {
        "sandbox: Environment mismatch: HOME": "WARNING",
        "sandbox: escalated": "INFO",
        "sandbox: odd": "INFO",
    }


def test_send_failure_still_removes_the_container() -> None:
    backend = ScriptedBackend([READY], fail_send=True)
    with pytest.raises(ExecutorError, match="injected send failure"):
        Executor(Settings(), backend=backend).run(RunRequest(code="x"))
    assert backend.started[0].calls == ["send:bundle", "send:job", "remove"]


def test_remove_failure_does_not_mask_the_result(log_lines: list[LogLine]) -> None:
    backend = ScriptedBackend([READY], [RUNNING, result_frame()], fail_remove=True)
    result = Executor(Settings(), backend=backend).run(RunRequest(code="x"))
    assert result.status is RunStatus.SUCCEEDED
    assert any(line.level == "WARNING" and "cleanup failed" in line.message for line in log_lines)


def test_remove_failure_does_not_mask_the_first_error() -> None:
    backend = ScriptedBackend([READY], fail_send=True, fail_remove=True)
    with pytest.raises(ExecutorError, match="injected send failure"):
        Executor(Settings(), backend=backend).run(RunRequest(code="x"))


def test_on_event_error_propagates_after_cleanup() -> None:
    backend = ScriptedBackend([READY], [RUNNING, result_frame()])

    def on_event(event: RunEvent) -> None:
        if event.data == "running":
            raise KeyError("consumer")

    with pytest.raises(KeyError):
        Executor(Settings(), backend=backend).run(RunRequest(code="x"), on_event=on_event)
    assert backend.started[0].calls[-1] == "remove"


def test_transcript_caps_output_even_if_the_runner_does_not() -> None:
    settings = Settings(stdout_limit_bytes=1024)
    # A misbehaving runner sends far more than its cap; the controller keeps <= 3x.
    chunks: list[ScriptItem] = [out("stdout", "z" * 1000) for _ in range(10)]
    backend = ScriptedBackend([READY], [RUNNING, *chunks, result_frame()])
    result = Executor(settings, backend=backend).run(RunRequest(code="x"))
    assert len(result.stdout.encode()) <= 3 * 1024
    assert result.stdout_truncated is True
