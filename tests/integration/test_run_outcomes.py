"""How runs end in a real sandbox: bad code is a status, never an exception."""

from __future__ import annotations

import time

import pytest

from ai_data_agent import Executor, RunRequest, RunStatus, Settings

pytestmark = pytest.mark.integration


def test_failing_code_is_failed_with_a_traceback(executor: Executor) -> None:
    code = "def boom():\n    raise ValueError('boom')\n\nboom()\n"

    result = executor.run(RunRequest(code=code))

    assert result.status == RunStatus.FAILED
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "ValueError: boom" in result.stderr
    assert result.error is None


def test_the_last_expressions_value_is_the_results_mime_bundle(executor: Executor) -> None:
    code = "import statistics\nrows = [3, 1, 2]\nprint(len(rows))\nstatistics.median(rows)"

    result = executor.run(RunRequest(code=code))

    assert (result.status, result.stdout) == (RunStatus.SUCCEEDED, "3\n")
    assert result.result is not None and result.result.data == {"text/plain": "2"}
    failed = executor.run(RunRequest(code="x = 1\nx / 0"))
    assert failed.status == RunStatus.FAILED and failed.result is None
    assert 'main.py", line 2, in <module>' in failed.stderr and "<string>" not in failed.stderr


def test_infinite_loop_times_out_within_the_bound(executor: Executor) -> None:
    timeout_s = 2.0

    started = time.monotonic()
    result = executor.run(RunRequest(code="while True:\n    pass\n", timeout_s=timeout_s))
    elapsed = time.monotonic() - started

    assert result.status == RunStatus.TIMED_OUT
    assert elapsed < timeout_s + 2.0


# Bounded (768 MB) so that a missing limit fails the test instead of eating the host.
HOG = "chunks = []\nfor _ in range(48):\n    chunks.append(b'x' * (16 << 20))\n"
CHILD_HOG = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {HOG!r}], check=True)\n"


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(HOG, id="main-process"),
        pytest.param(CHILD_HOG, id="child-process"),
    ],
)
def test_memory_hog_is_memory_exceeded(executor: Executor, code: str) -> None:
    result = executor.run(RunRequest(code=code, memory_mb=256))

    assert result.status == RunStatus.MEMORY_EXCEEDED, (result.exit_code, result.stderr[-2000:])


def test_missing_package_is_install_failed_with_pips_message(executor: Executor) -> None:
    result = executor.run(
        RunRequest(code="print('never')", requirements=["ai-data-agent-no-such-package-x7q"])
    )

    assert result.status == RunStatus.INSTALL_FAILED
    assert "No matching distribution" in result.install.log_tail
    assert result.stdout == ""
    assert result.exit_code is None


def test_stdout_is_cut_at_the_cap(settings: Settings, executor: Executor) -> None:
    code = "import sys\nsys.stdout.write('y' * (5 * 1024 * 1024))\n"

    result = executor.run(RunRequest(code=code))

    assert result.status == RunStatus.SUCCEEDED
    assert result.stdout_truncated is True
    assert 0 < len(result.stdout.encode()) <= settings.stdout_limit_bytes
    assert result.stdout == "y" * len(result.stdout)


def test_code_that_silences_its_output_fds_runs_to_its_own_end(executor: Executor) -> None:
    code = (
        "import os, sys, time\n"
        "devnull = os.open(os.devnull, os.O_WRONLY)\n"
        "os.dup2(devnull, 1)\n"
        "os.dup2(devnull, 2)\n"
        "time.sleep(1)\n"
        "sys.exit(3)\n"
    )

    result = executor.run(RunRequest(code=code))

    assert (result.status, result.exit_code) == (RunStatus.FAILED, 3)
