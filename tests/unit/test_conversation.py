"""`Conversation` and `SandboxDriver` against scripted sandboxes: the controller's deadlines.

`Conversation` is driven directly with a hand-made `Budget`, so each phase's
deadline can be made short on its own; `SandboxDriver` is driven with a
`ScriptedBackend` (and a warm pool) for what happens around the conversation:
the pool, the job and its inputs, and removal now or deferred.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import ScriptedBackend, ScriptedSandbox, ScriptItem

from ai_data_agent.executor.artifacts import ArtifactCollector
from ai_data_agent.executor.conversation import Budget, Conversation, Transcript
from ai_data_agent.executor.driver import Assignment, SandboxDriver
from ai_data_agent.executor.events import RunEvent
from ai_data_agent.executor.jobs import Job
from ai_data_agent.executor.link import EXIT_WAIT_S, SandboxLink
from ai_data_agent.executor.output import OutputBuffer
from ai_data_agent.executor.pool import WarmPool
from ai_data_agent.executor.protocol import encode_message
from ai_data_agent.executor.spec import ContainerSpec, build_spec
from ai_data_agent.limits import default_limits
from ai_data_agent.settings import Settings
from tests.support.logs import LogLine
from tests.support.wait import poll

TOKEN = "t" * 32
SETTINGS = Settings()
LONG = 30.0

READY: ScriptItem = {"k": "phase", "phase": "ready"}
RUNNING: ScriptItem = {"k": "phase", "phase": "running"}
COLLECTING: ScriptItem = {"k": "phase", "phase": "collecting"}
CLEAN: ScriptItem = {"k": "result", "execute": {"exit_code": 0}, "oom_kills": 0}


def session(
    before_go: list[ScriptItem],
    after_go: list[ScriptItem] | None = None,
    *,
    end_stream: bool = False,
) -> ScriptedSandbox:
    """A started sandbox that has its bundle and a job with `TOKEN`."""
    scripted = ScriptedSandbox(
        "run-1",
        before_go,
        after_go or [],
        end_stream=end_stream,
        fail_send=False,
        fail_remove=False,
        exit_code=0,
    )
    scripted.send(b"bundle")
    scripted.send(encode_message({"mode": "run", "token": TOKEN}))
    return scripted


def budget(**overrides: float) -> Budget:
    values: dict[str, Any] = {
        "until_ready_s": LONG,
        "code_s": LONG,
        "stream_bytes": 1 << 20,
        "verify_s": LONG,
        "collect_s": LONG,
    }
    return Budget(**{**values, **overrides})


def converse(
    scripted: ScriptedSandbox,
    plan: Budget,
    *,
    return_at_result: bool = False,
    **kwargs: Any,
) -> tuple[Transcript, float]:
    transcript = Transcript.empty(SETTINGS, ArtifactCollector(None, 10, 1 << 20))
    started = time.monotonic()
    link = SandboxLink(scripted, TOKEN, "run-1")
    Conversation(link, plan, transcript, **kwargs).run(return_at_result=return_at_result)
    return transcript, time.monotonic() - started


# -- deadlines, one phase at a time ----------------------------------------------------------
@pytest.mark.parametrize(
    ("script", "after_go", "short", "phase"),
    [
        ([], [], "until_ready_s", "starting"),
        ([{"k": "phase", "phase": "installing"}], [], "until_ready_s", "installing"),
        ([READY], [], "verify_s", "ready"),
        ([READY], [RUNNING], "code_s", "running"),
        ([READY], [RUNNING, COLLECTING], "collect_s", "collecting"),
    ],
)
def test_each_phase_has_its_own_deadline(
    script: list[ScriptItem], after_go: list[ScriptItem], short: str, phase: str
) -> None:
    scripted = session(script, after_go)
    transcript, elapsed = converse(scripted, budget(**{short: 0.2}))

    assert transcript.deadline_hit == phase
    assert transcript.result is None
    assert 0.15 < elapsed < 5
    assert scripted.calls.count("kill") == 1
    assert scripted.calls[-1] == "exit_state"
    assert transcript.exit_state.exit_code == 137


def test_the_code_deadline_counts_from_running_not_from_the_start() -> None:
    """A slow install does not eat into the code's time, nor the code into collection."""
    scripted = session([READY], [RUNNING, COLLECTING, CLEAN])
    transcript, _ = converse(scripted, budget(until_ready_s=0.5, code_s=0.5, collect_s=0.5))

    assert transcript.deadline_hit is None and transcript.result is not None
    assert transcript.code_s is not None and transcript.code_s < 0.5


def test_a_deadline_in_running_keeps_the_controllers_measure_of_the_code() -> None:
    transcript, _ = converse(session([READY], [RUNNING]), budget(code_s=0.3))
    assert transcript.deadline_hit == "running"
    assert transcript.code_s is not None and 0.25 < transcript.code_s < 5


def test_cancel_kills_in_whatever_phase_and_keeps_what_came_before() -> None:
    cancel = threading.Event()
    events: list[RunEvent] = []

    def seen(event: RunEvent) -> None:
        events.append(event)
        if event.kind == "stdout":
            cancel.set()

    scripted = session([READY], [RUNNING, {"k": "out", "s": "stdout", "d": "partial\n"}])
    transcript, elapsed = converse(scripted, budget(), on_event=seen, cancel=cancel)

    assert transcript.deadline_hit == "cancelled"
    assert transcript.stdout.text == "partial\n"
    assert [e.data for e in events if e.kind == "phase"] == ["ready", "running"]
    assert scripted.calls.count("kill") == 1 and elapsed < 5


def test_the_stream_budget_counts_every_byte_even_noise(log_lines: list[LogLine]) -> None:
    noise = b"x" * 999 + b"\n"
    scripted = session([noise] * 5 + [READY])
    transcript, _ = converse(scripted, budget(stream_bytes=3000))

    assert transcript.deadline_hit == "stream"
    assert transcript.phase == "starting"  # the ready frame was never read
    assert any("more than 3000 bytes" in line.message for line in log_lines)


def test_malformed_frames_are_counted_and_dropped(log_lines: list[LogLine]) -> None:
    scripted = session(
        [
            {"k": "phase"},  # no phase
            {"k": "nonsense"},
            {"k": "out", "s": "stdout", "d": 42},  # strict: no coercion
            {"k": "phase", "phase": "x" * 100},  # over its cap
            b"not-the-token " + b'{"k": "result"}\n',
            READY,
        ],
        [RUNNING, {"k": "out", "s": "stdout", "d": "real\n"}, CLEAN],
        end_stream=True,
    )
    transcript, _ = converse(scripted, budget())

    assert transcript.result is not None and transcript.stdout.text == "real\n"
    warning = [line.message for line in log_lines if line.level == "WARNING"]
    assert warning == [
        "ignored 1 unauthenticated line(s) and 4 malformed frame(s) from the sandbox"
    ]


def test_at_ready_the_network_goes_before_go_and_stdin_closes() -> None:
    scripted = session([READY], [RUNNING, CLEAN], end_stream=True)
    converse(scripted, budget(), detach_network=True)

    after_job = scripted.calls[scripted.calls.index("send:job") + 1 :]
    assert after_job[:3] == ["detach", "send:go", "close_stdin"]


def test_a_clean_result_waits_briefly_for_the_exit_unless_told_not_to() -> None:
    # The stream stays open after the result: the runner did not exit.
    transcript, waited = converse(session([READY], [RUNNING, CLEAN]), budget())
    assert transcript.finished_cleanly and waited >= 0.9  # EXIT_WAIT_S

    transcript, quick = converse(
        session([READY], [RUNNING, CLEAN]), budget(), return_at_result=True
    )
    assert transcript.finished_cleanly and quick < 0.5


def test_a_result_without_the_oom_count_is_not_clean() -> None:
    scripted = session([READY], [RUNNING, {"k": "result", "execute": {"exit_code": 0}}])
    transcript, _ = converse(scripted, budget(), return_at_result=True)
    assert transcript.result is not None and not transcript.finished_cleanly
    assert scripted.calls[-1] == "exit_state"  # then the container's own account counts


def test_output_buffer_cuts_on_a_character_boundary() -> None:
    buffer = OutputBuffer(2)  # 6 bytes of room
    assert buffer.add("ab") == "ab"
    assert buffer.add("\u00e9\u00e9\u00e9") == "\u00e9\u00e9"  # 2 + 4 bytes; the third is cut
    assert buffer.cut and buffer.add("more") == ""
    assert buffer.text == "ab\u00e9\u00e9"


def test_the_budget_for_a_job_follows_the_settings() -> None:
    settings = Settings(stop_grace_s=3, install_timeout_s=100)
    plan = Budget.for_job(settings, 20)
    assert (plan.until_ready_s, plan.code_s, plan.verify_s, plan.collect_s) == (133, 23, 63, 63)
    assert plan.stream_bytes > 8 * settings.stdout_limit_bytes


# -- the driver -------------------------------------------------------------------------------
def spec_for(run_id: str) -> ContainerSpec:
    return build_spec(
        SETTINGS,
        default_limits(SETTINGS),
        image="img",
        run_id=run_id,
        controller_id="c",
        needs_install=False,
    )


class SlowRemoval(ScriptedBackend):
    """`remove` of each session blocks until ``release`` is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()
        self.removed: list[str] = []

    def start(self, spec: ContainerSpec, run_id: str) -> ScriptedSandbox:
        started = super().start(spec, run_id)
        inner = started.remove

        def remove() -> None:
            assert self.release.wait(10)
            inner()
            self.removed.append(run_id)

        started.remove = remove  # type: ignore[method-assign]
        return started


@pytest.fixture
def driver_backend() -> Iterator[SlowRemoval]:
    backend = SlowRemoval([READY], [RUNNING, CLEAN], end_stream=False)
    yield backend
    backend.release.set()


def test_deferred_removal_answers_first_and_close_waits_for_it(
    driver_backend: SlowRemoval,
) -> None:
    driver = SandboxDriver(SETTINGS, driver_backend)
    started = time.monotonic()
    transcript = driver.drive(
        Assignment(spec_for("run-1"), Job(mode="run")), run_id="run-1", defer_removal=True
    )
    assert time.monotonic() - started < 0.5  # neither the exit nor the removal was awaited
    assert transcript.finished_cleanly
    assert driver_backend.removed == []

    closer = threading.Thread(target=driver.close)
    closer.start()
    # This runner never ends its stream: its removal waits `EXIT_WAIT_S` for that, then
    # blocks on the gate; close waits for the removal itself.
    time.sleep(EXIT_WAIT_S + 0.3)
    assert closer.is_alive()  # close finishes the deferred removals
    driver_backend.release.set()
    closer.join(10)
    assert driver_backend.removed == ["run-1"]
    driver.close()  # and stays usable


@pytest.mark.parametrize(
    ("after_go", "cancelled"),
    [([RUNNING, {"k": "result", "execute": {"exit_code": 0}}], False), ([RUNNING, CLEAN], True)],
    ids=["no oom count", "cancelled"],
)
def test_removal_is_not_deferred_after_an_unclean_end(
    driver_backend: SlowRemoval, after_go: list[ScriptItem], cancelled: bool
) -> None:
    driver_backend.after_go = after_go
    driver_backend.release.set()
    cancel = threading.Event()
    if cancelled:
        cancel.set()
    driver = SandboxDriver(SETTINGS, driver_backend)
    transcript = driver.drive(
        Assignment(spec_for("run-1"), Job(mode="run")),
        run_id="run-1",
        cancel=cancel,
        defer_removal=True,
    )

    assert not transcript.finished_cleanly
    assert driver_backend.removed == ["run-1"]  # before drive returned


def test_the_job_and_its_inputs_follow_the_bundle(tmp_path: Path) -> None:
    uv = tmp_path / "uv"
    uv.write_bytes(b"U" * 10)
    backend = ScriptedBackend([READY], [RUNNING, CLEAN])
    driver = SandboxDriver(Settings(uv_binary=uv), backend)
    assignment = Assignment(
        spec_for("run-1"), Job(mode="install"), inputs=[b"file-1", b"file-2"], ship_uv=True
    )
    transcript = driver.drive(assignment, run_id="run-1")

    assert transcript.result is not None
    calls = backend.started[0].calls
    assert calls[:5] == ["send:bundle", "send:job", "send:file-1", "send:file-2", "send:UUUUUUUUUU"]
    job = backend.started[0].jobs[0]
    assert job["install"]["uv_size"] == 10 and len(job["token"]) >= 32
    assert assignment.job.token == ""  # the caller's job is not changed
    assert calls[-1] == "remove"


def test_a_pooled_sandbox_is_used_when_its_profile_waits(tmp_path: Path) -> None:
    backend = ScriptedBackend([READY], [RUNNING, CLEAN])
    pool = WarmPool(backend, size=1, ttl_s=300)
    pool.add_profile(spec_for)
    poll(lambda: pool.idle_count() == 1, timeout_s=5, what="a pooled sandbox")
    driver = SandboxDriver(SETTINGS, backend, pool)
    try:
        transcript = driver.drive(Assignment(spec_for("run-1"), Job(mode="run")), run_id="run-1")
    finally:
        pool.close()
    assert transcript.result is not None
    pooled = backend.started[0]
    assert pooled.run_id.startswith("pool-") and pooled.calls[-1] == "remove"
    assert pooled.jobs[0]["mode"] == "run"
    assert pool.taken == 1
