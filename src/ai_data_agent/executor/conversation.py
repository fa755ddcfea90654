"""One conversation with an opened sandbox: frames in, the controller's deadlines, a `Transcript` out.

    transcript = Transcript.empty(settings, collector)
    Conversation(link, budget, transcript).run(return_at_result=False)

Every byte from the container is hostile: the link reads only authenticated,
typed frames (`link.SandboxLink`), output is kept within the caps (`output`),
and the whole stream within a budget. The controller, not the runner, decides
when time is up: each phase has a deadline, a passed deadline or a cancel
kills the container, and what was collected so far stays in the transcript.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from loguru import logger

from ai_data_agent.executor.backend import ExitState
from ai_data_agent.executor.events import Emitter, EventHandler
from ai_data_agent.executor.frames import Frame, LogFrame, PhaseFrame, ResultFrame
from ai_data_agent.executor.link import SandboxLink
from ai_data_agent.executor.output import Output
from ai_data_agent.executor.protocol import GO_LINE
from ai_data_agent.settings import Settings

__all__ = ["Budget", "Conversation", "Transcript"]

# The runner's verify step gets this long between "ready" and "running", and
# artifact collection as long after the code ends.
VERIFY_BUDGET_S = 60.0
COLLECT_BUDGET_S = 60.0
READ_SLICE_S = 0.25
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass
class Transcript(Output):
    """What the controller collected from one sandbox, bounded at every step."""

    phase: str = "starting"
    result: ResultFrame | None = None
    runner_stderr: bytearray = field(default_factory=bytearray)
    deadline_hit: str | None = None  # the phase in which the controller killed it
    code_s: float | None = None  # how long the code ran, as the controller saw it
    exit_state: ExitState = field(default_factory=lambda: ExitState(None, False))
    cpu_s: float | None = None  # the container's CPU seconds, read on the host at its end

    @property
    def finished_cleanly(self) -> bool:
        """The runner sent its result and read its own OOM count: nothing more to learn."""
        return (
            self.result is not None
            and self.deadline_hit is None
            and self.result.oom_kills is not None
        )


@dataclass(frozen=True)
class Budget:
    """The controller's deadlines for one sandbox, per phase, and its stream budget."""

    until_ready_s: float
    code_s: float
    stream_bytes: int
    verify_s: float = VERIFY_BUDGET_S
    collect_s: float = COLLECT_BUDGET_S

    @classmethod
    def for_job(cls, settings: Settings, code_timeout_s: float) -> Budget:
        grace = settings.stop_grace_s
        # Worst case of the runner's framing: JSON-escaped output (<= 6x) plus logs.
        stream = 8 * (
            settings.stdout_limit_bytes
            + settings.stderr_limit_bytes
            + settings.install_log_limit_bytes
        )
        stream += settings.max_artifact_total_bytes * 4 // 3 + 4 * 1024 * 1024
        return cls(
            until_ready_s=settings.install_timeout_s + grace + 30,
            code_s=code_timeout_s + grace,
            stream_bytes=stream,
            verify_s=VERIFY_BUDGET_S + grace,
            collect_s=COLLECT_BUDGET_S + grace,
        )


class Conversation:
    """Reads frames until the runner's result, a deadline, a cancel or the end of the stream."""

    def __init__(
        self,
        link: SandboxLink,
        budget: Budget,
        transcript: Transcript,
        *,
        detach_network: bool = False,
        on_event: EventHandler | None = None,
        cancel: threading.Event | None = None,
        held: bool = False,
    ) -> None:
        self.link = link
        self.sandbox = link.sandbox
        self.budget = budget
        self.transcript = transcript
        transcript.runner_stderr = link.runner_stderr  # kept by the link as it reads
        self.detach_network = detach_network
        self.emit = Emitter(link.run_id, on_event)
        self.cancel = cancel
        self.held = held  # the runner stays after its result (``Job.hold_s``) until stdin closes
        self.log = logger.bind(run_id=link.run_id)
        self.deadline = time.monotonic() + budget.until_ready_s
        self.code_started: float | None = None

    def run(self, *, return_at_result: bool = False) -> Transcript:
        """Converse to the end; with ``return_at_result``, return at a clean result without
        waiting for the container to stop (its removal is deferred too)."""
        t = self.transcript
        while t.result is None and t.deadline_hit is None:
            if not self._step():
                break
        self._code_ended()
        self.link.report_noise()
        held = self.held and t.result is not None and t.deadline_hit is None
        if held:  # the runner waits for its stdin to close: its CPU counter is still there
            t.cpu_s = self.link.cpu_used_s()
        if t.finished_cleanly:
            if held:
                self.sandbox.close_stdin()  # the runner exits by itself
            if not return_at_result:
                self.link.await_exit()
        else:
            if held:  # the runner could not tell its own OOM count: the engine's, once stopped
                self.sandbox.kill()
            t.exit_state = self.sandbox.exit_state(timeout_s=10.0)
        return t

    def _stop(self, reason: str, message: str, level: str = "INFO") -> None:
        self.transcript.deadline_hit = reason
        self.log.log(level, message)
        self.transcript.cpu_s = self.link.cpu_used_s()  # what it burnt until now is charged
        self.sandbox.kill()

    def _step(self) -> bool:
        """Handle one slice of time; False at the end of the stream."""
        t = self.transcript
        if self.cancel is not None and self.cancel.is_set():
            self._stop("cancelled", f"cancelled in phase {t.phase}; killing the sandbox")
            return True
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self._stop(t.phase, f"deadline passed in phase {t.phase}; killing the sandbox")
            return True
        frames = self.link.read(min(remaining, READ_SLICE_S))
        if frames is None:
            return False  # end of stream: the container exited
        if self.link.received > self.budget.stream_bytes:
            limit = self.budget.stream_bytes
            self._stop("stream", f"sandbox sent more than {limit} bytes; killing it", "WARNING")
            return True
        for frame in frames:
            self._handle(frame)
        return True

    def _handle(self, frame: Frame) -> None:
        t = self.transcript
        if t.take(frame, self.emit):
            return
        if isinstance(frame, LogFrame):
            level = frame.level.upper() if frame.level.upper() in LOG_LEVELS else "INFO"
            self.log.log(level, "sandbox: {}", frame.msg[:2000])
        elif isinstance(frame, PhaseFrame):
            self._enter(frame.phase)
        elif isinstance(frame, ResultFrame):
            t.result = frame
        else:  # a session's frame from a one-shot job: not ours to act on
            self.link.reader.bad_frames += 1

    def _enter(self, phase: str) -> None:
        """A new phase: its deadline, and at ``ready`` the network goes and the code is released."""
        self.transcript.phase = phase
        self.emit("phase", phase)
        now = time.monotonic()
        if phase == "ready":
            if self.detach_network:
                self.sandbox.detach_network()
                self.log.debug("install network detached")
            self.sandbox.send(GO_LINE)
            if not self.held:  # a held runner's stdin closes after its CPU is read
                self.sandbox.close_stdin()
            self.deadline = now + self.budget.verify_s
        elif phase == "running":
            self.code_started = now
            self.deadline = now + self.budget.code_s
        elif phase == "collecting":
            self._code_ended()
            self.deadline = now + self.budget.collect_s

    def _code_ended(self) -> None:
        if self.code_started is not None and self.transcript.code_s is None:
            self.transcript.code_s = time.monotonic() - self.code_started
