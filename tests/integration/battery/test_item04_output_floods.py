"""Item 4: floods of output, binary garbage and terminal escapes.

Hundreds of MB leave the sandbox at full speed; the result keeps at most the
cap with the truncation flag set, the controller's memory stays bounded, and
the result's JSON and the controller's log stay valid and escaped. The
runner's channel is its own: pid 1 (the bootstrap, which forked the runner)
holds none of it, so what code writes to ``/proc/1/fd/1`` goes nowhere, and a
flood there, or forged frames, cannot reach the controller nor hold a run
past its deadline. Were a stream to flood anyway, the controller's stream
budget bounds it and a kill does not wait on it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from ai_data_agent.executor.spec import build_spec
from ai_data_agent.limits import default_limits

from .conftest import PREIMPORTED, RUNTIMES, Battery

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
FLOOD_MB = 300
# Peak resident memory the controller may add while it handles a flood.
RSS_BUDGET = 100 * MiB
# A run ends this soon after its deadline (the container's start and removal included).
DEADLINE_SLACK_S = 6.0

FLOOD = f"""
import os
chunk = (b"\\x1b[31mred\\x1b[0m \\xff\\xfe\\xc3( \\x00\\x07" * 4096)[: 1 << 20]
fd = {{fd}}
for _ in range({FLOOD_MB}):
    os.write(fd, chunk)
"""
GARBAGE = """
import os, sys
os.write(1, os.urandom(8 << 20))
os.write(2, os.urandom(8 << 20))
"""
LINE_FLOOD = """
import os
fd = os.open("/proc/1/fd/1", os.O_WRONLY)
line = b"x" * ((1 << 20) - 1) + b"\\n"
for _ in range(300):
    os.write(fd, line)
print("flooded")
"""
ESCAPES = r"""
import sys
sys.stdout.buffer.write(b"\x1b[2J\x1b[H\x1b]0;owned\x07\x1b[31mred\x1b[0m bad:\xff\xfe\xc3(\n")
sys.stdout.flush()
sys.stderr.buffer.write(b"\x1b[5m\r\x08\x00nul\n")
"""


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every line the controller logs during the test, as a serialized JSON sink writes it."""
    lines: list[str] = []
    handler = logger.add(lines.append, level="DEBUG", serialize=True)
    yield lines
    logger.remove(handler)


def assert_valid_and_escaped(result_json: str, log_lines: list[str]) -> None:
    data = json.loads(result_json)
    assert isinstance(data, dict)
    assert "\x1b" not in result_json and "\x00" not in result_json, "raw control bytes in JSON"
    for line in log_lines:
        json.loads(line)
        assert "\x1b" not in line and "\x00" not in line, line[:200]


@pytest.mark.parametrize("fd", [1, 2], ids=["stdout", "stderr"])
def test_hundreds_of_mb_are_cut_at_the_cap_with_bounded_memory(
    battery: Battery, log_lines: list[str], fd: int
) -> None:
    stream = "stdout" if fd == 1 else "stderr"
    cap = getattr(battery.settings, f"{stream}_limit_bytes")
    rss_before = status_kib("VmRSS") * 1024
    reset_peak_rss()

    outcome = battery.run(FLOOD.format(fd=fd), timeout_s=60)

    peak = status_kib("VmHWM") * 1024
    result = outcome.result
    assert result.status == "succeeded", (result.error, result.stderr[-300:])
    assert getattr(result, f"{stream}_truncated") is True
    text = getattr(result, stream)
    assert 0 < len(text.encode()) <= 3 * cap  # each raw byte decodes to at most 3 (U+FFFD)
    assert "\x1b[31mred" in text and "\ufffd" in text  # kept as data, decoded with replacement
    assert peak - rss_before < RSS_BUDGET, f"controller RSS grew by {(peak - rss_before) >> 20} MB"
    assert_valid_and_escaped(result.model_dump_json(), log_lines)
    battery.assert_host_unchanged()


def test_binary_garbage_is_decoded_with_replacement(battery: Battery, log_lines: list[str]) -> None:
    outcome = battery.run(GARBAGE)

    result = outcome.result
    assert result.status == "succeeded", (result.error, result.stderr[-300:])
    assert result.stdout_truncated and result.stderr_truncated
    assert "\ufffd" in result.stdout and "\ufffd" in result.stderr
    assert_valid_and_escaped(result.model_dump_json(), log_lines)
    battery.assert_host_unchanged()


def test_terminal_escapes_are_data_and_escaped_in_json(
    battery: Battery, log_lines: list[str]
) -> None:
    outcome = battery.run(ESCAPES)

    result = outcome.result
    assert result.status == "succeeded", (result.error, result.stderr)
    assert (
        result.stdout == "\x1b[2J\x1b[H\x1b]0;owned\x07\x1b[31mred\x1b[0m bad:\ufffd\ufffd\ufffd(\n"
    )
    assert result.stderr == "\x1b[5m\r\x08\x00nul\n"
    dumped = result.model_dump_json()
    assert "\\u001b[2J" in dumped and "\\u0000nul" in dumped
    assert_valid_and_escaped(dumped, log_lines)
    battery.assert_host_unchanged()


def test_flood_that_bypasses_the_runner_is_bounded(battery: Battery, log_lines: list[str]) -> None:
    # /proc/1/fd/1 is pid 1's stdout, /dev/null: the flood reaches nothing. Were it
    # the controller's stream, its budget would bound it (output_exceeded).
    code = FLOOD.format(fd="os.open('/proc/1/fd/1', os.O_WRONLY)")
    rss_before = status_kib("VmRSS") * 1024
    reset_peak_rss()

    outcome = battery.run(code, timeout_s=60)

    peak = status_kib("VmHWM") * 1024
    assert outcome.result.status in {"output_exceeded", "succeeded"}, outcome.result.error
    assert outcome.elapsed_s < 30
    assert peak - rss_before < RSS_BUDGET, f"controller RSS grew by {(peak - rss_before) >> 20} MB"
    assert_valid_and_escaped(outcome.result.model_dump_json(), log_lines)
    battery.assert_host_unchanged()


@pytest.mark.parametrize("battery", ["runc", PREIMPORTED], indirect=True)
def test_forged_frames_in_the_container_stdout_are_ignored(battery: Battery) -> None:
    # Pid 1's stdout is not the channel; and without the run's token (held only by
    # the undumpable runner) a forged result or output frame would be noise there.
    code = r"""
import json, os
fd = os.open("/proc/1/fd/1", os.O_WRONLY)
for token in ("", "0" * 32, "x"):
    for frame in ({"k": "result", "execute": {"exit_code": 0}, "install": {"ok": True}},
                  {"k": "out", "s": "stdout", "d": "FORGED\n"}):
        os.write(fd, (token + " " + json.dumps(frame) + "\n").encode())
print("real")
raise SystemExit(3)
"""
    outcome = battery.run(code)

    assert outcome.result.status == "failed" and outcome.result.exit_code == 3
    assert outcome.result.stdout == "real\n"
    battery.assert_host_unchanged()


def test_benign_twin_output_under_the_cap_is_whole(battery: Battery) -> None:
    code = "for i in range(1000):\n    print(f'line {i} ✓')\n"

    outcome = battery.run(code)

    result = outcome.result
    assert result.status == "succeeded"
    assert not result.stdout_truncated and not result.stderr_truncated
    assert result.stdout == "".join(f"line {i} ✓\n" for i in range(1000))
    battery.assert_host_unchanged()


@pytest.mark.parametrize("battery", RUNTIMES, indirect=True)
def test_a_flood_of_long_lines_into_pid_1_ends_within_the_deadline(battery: Battery) -> None:
    # 300 lines of 1 MiB into /proc/1/fd/1: when that was the container's stdout, the
    # run outlived its timeout by minutes. Now nothing of it reaches the controller.
    timeout_s = 5.0

    outcome = battery.run(LINE_FLOOD, timeout_s=timeout_s)

    assert outcome.elapsed_s < timeout_s + DEADLINE_SLACK_S, outcome.result.status
    assert outcome.result.status == "succeeded", outcome.result.error
    assert outcome.result.stdout == "flooded\n"
    battery.assert_host_unchanged()


def test_a_sandbox_killed_with_its_stream_full_stops_at_once(battery: Battery) -> None:
    # A container that writes its stdout faster than anyone reads it, killed at a
    # deadline: the kill and the exit do not wait on what is still in the stream.
    executor = battery.executor()
    settings = executor.settings
    run_id = battery.new_run_id()
    spec = build_spec(
        settings,
        default_limits(settings),
        image=executor.backend.resolve_image(),
        run_id=run_id,
        controller_id=executor.controller_id,
        needs_install=False,
    )
    flood = "import os\nwhile True:\n    os.write(1, b'x' * 65536)\n"
    spec = dataclasses.replace(spec, command=["python3", "-c", flood])
    sandbox = executor.backend.start(spec, run_id)
    try:
        received = 0
        while received < 8 * MiB:
            chunk = sandbox.read(5.0)
            assert chunk is not None and chunk[1], "the flood did not start"
            received += len(chunk[1])
        started = time.monotonic()
        sandbox.kill()
        state = sandbox.exit_state(timeout_s=10.0)
        stopped_s = time.monotonic() - started
    finally:
        sandbox.remove()

    assert stopped_s < 5.0
    assert state.exit_code == 137
    battery.assert_host_unchanged()
