"""The pieces one node and a cluster share: the execution core, the handles, readiness, and
the error rebuilt from a wire."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import anyio
import pytest
from service_fakes import FakeExecutor

from ai_data_agent.checks import Check
from ai_data_agent.errors import (
    AiDataAgentError,
    InstallFailed,
    NotReady,
    QueueFull,
    RequestRejected,
    ServerError,
    SessionBusy,
    SessionLimit,
)
from ai_data_agent.models import Limits, RunRequest, RunResult, RunStatus
from ai_data_agent.service.execution import ClaimedRun, execute_run
from ai_data_agent.service.handles import CellHandle, RunHandle, wait_done
from ai_data_agent.service.health import engine_probes, probe
from ai_data_agent.service.node import REASON_SHUTDOWN_RUNNING
from ai_data_agent.service.records import Outcome
from ai_data_agent.session_models import CellResult, CellStatus
from ai_data_agent.wire_errors import rebuild_error

LIMITS = Limits(timeout_s=5, memory_mb=256, cpus=1, network=False)


def claimed(code: str) -> ClaimedRun:
    return ClaimedRun("r1", RunRequest(code=code), LIMITS)


Events = list[tuple[str, dict[str, object]]]


def execute(
    run: ClaimedRun, tmp_path: Path, executor: FakeExecutor | None = None
) -> tuple[Outcome, Events]:
    events: Events = []
    outcome = execute_run(
        executor or FakeExecutor(),
        run,
        lambda name, data: events.append((name, json.loads(data))),
        tmp_path / "artifacts",
        log_of="worker",
    )
    return outcome, events


# -- the execution core -------------------------------------------------------------------
def test_a_run_maps_live_phases_and_output_to_events(tmp_path: Path) -> None:
    outcome, events = execute(claimed("print(1)"), tmp_path)
    assert outcome.status == RunStatus.SUCCEEDED and outcome.error is None
    assert outcome.result is not None and outcome.result.stdout == "ran: print(1)\n"
    assert events == [
        ("status", {"status": "running"}),
        ("stdout", {"data": "live: print(1)\n"}),
    ]


def test_a_host_failure_is_an_error_outcome_without_a_traceback(tmp_path: Path) -> None:
    outcome, _ = execute(claimed("explode"), tmp_path)
    assert (outcome.status, outcome.result) == (RunStatus.ERROR, None)
    assert outcome.error is not None and "cannot create the sandbox container" in outcome.error


def test_a_crash_points_at_the_log_of_the_process_and_hides_its_detail(tmp_path: Path) -> None:
    outcome, _ = execute(claimed("crash"), tmp_path)
    assert outcome.status == RunStatus.ERROR
    assert outcome.error == "internal error (RuntimeError); see the worker's log"


def test_a_run_stopped_by_a_shutdown_ends_interrupted_with_its_partial_result(
    tmp_path: Path,
) -> None:
    run = claimed("block")
    executor = FakeExecutor()
    executor.on_start = lambda _: run.interrupt()
    outcome, _ = execute(run, tmp_path, executor)
    assert (outcome.status, outcome.error) == (RunStatus.INTERRUPTED, REASON_SHUTDOWN_RUNNING)
    assert outcome.result is not None
    assert (outcome.result.status, outcome.result.stdout) == (RunStatus.INTERRUPTED, "partial\n")


def test_a_run_cancelled_by_a_client_stays_cancelled(tmp_path: Path) -> None:
    run = claimed("block")
    executor = FakeExecutor()
    executor.on_start = lambda _: run.cancel.set()
    outcome, _ = execute(run, tmp_path, executor)
    assert outcome.status == RunStatus.CANCELLED and not run.interrupted


# -- handles ------------------------------------------------------------------------------
def test_a_handle_is_done_once_and_its_first_outcome_counts() -> None:
    handle = RunHandle("r1")
    calls: list[str] = []
    handle.add_done_callback(lambda: calls.append("early"))
    first = RunResult(id="r1", status=RunStatus.SUCCEEDED)
    handle.set_done(first)
    handle.set_done(RunResult(id="r1", status=RunStatus.ERROR))
    handle.add_done_callback(lambda: calls.append("late"))
    assert handle.done and handle.wait(0) and handle.result is first
    assert calls == ["early", "late"]


@pytest.mark.anyio
async def test_wait_done_wakes_on_the_loop_when_another_thread_ends_a_cell() -> None:
    handle = CellHandle("s1", 1)
    result = CellResult(
        session_id="s1",
        execution_count=1,
        generation=0,
        status=CellStatus.SUCCEEDED,
        state="preserved",
    )
    threading.Timer(0.05, handle.set_done, args=(result,)).start()
    with anyio.fail_after(5):
        await wait_done(handle)
    assert (handle.result, handle.error) == (result, None)


# -- readiness ----------------------------------------------------------------------------
def test_a_probe_passes_with_its_detail_or_what_it_returned_and_fails_with_the_error() -> None:
    executor = FakeExecutor()
    probes = engine_probes(executor)
    assert probes["docker"]() == Check("docker", True, "reachable")
    assert probes["image"]() == Check("image", True, "fake/sandbox:1")
    executor.backend.ping_error = ConnectionError("engine down")
    assert probes["docker"]() == Check("docker", False, "ConnectionError: engine down")
    assert probe("store", lambda: None, "writable")() == Check("store", True, "writable")


# -- errors rebuilt from a wire -----------------------------------------------------------
def test_an_error_is_rebuilt_as_the_class_its_code_names_with_its_context() -> None:
    limit = rebuild_error("session_limit", "full", retry_after=30.0, session_id="s1", status=429)
    assert isinstance(limit, SessionLimit)
    assert (limit.retry_after, limit.session_id, limit.status_code) == (30.0, "s1", 429)
    busy = rebuild_error("session_busy", "busy", session_id="s1")
    assert isinstance(busy, SessionBusy) and busy.session_id == "s1" and busy.status_code is None
    queue = rebuild_error("queue_full", "full", retry_after=5.0, run_id="r1")
    assert isinstance(queue, QueueFull) and queue.retry_after == 5.0 and queue.run_id == "r1"
    rejected = rebuild_error("invalid_request", "timeout_s: too high")
    assert isinstance(rejected, RequestRejected) and rejected.field is None
    assert isinstance(rebuild_error("install_failed", "no such package"), InstallFailed)


def test_an_unknown_code_is_a_server_error_and_no_code_goes_by_the_status() -> None:
    unknown = rebuild_error("something_new", "?")
    assert type(unknown) is ServerError and unknown.code == "something_new"
    assert isinstance(rebuild_error(None, "down", status=503), NotReady)
    assert type(rebuild_error(None, "?")) is ServerError
    assert isinstance(rebuild_error("not_ready", "x"), AiDataAgentError)
