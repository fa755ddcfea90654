"""From a transcript to a `RunResult`: the status, the error, and every field the runner reported.

    status, error = classify(transcript)
    result = run_result(run_id, image, request, transcript, settings)

The status comes first from what the controller itself saw (a cancel, a
deadline, the stream budget, an OOM kill), then from the runner's result
frame. Strings from the sandbox are capped here.
"""

from __future__ import annotations

from ai_data_agent.executor.conversation import Transcript
from ai_data_agent.executor.diagnose import install_error
from ai_data_agent.executor.frames import ExecuteSection, InstallSection, ResultFrame
from ai_data_agent.models import (
    DisplayOutput,
    EnvironmentInfo,
    InstallReport,
    RunRequest,
    RunResult,
    RunStatus,
    Timings,
)
from ai_data_agent.settings import Settings

__all__ = ["MAX_ERROR_CHARS", "classify", "install_failed_result", "run_result"]

MAX_ERROR_CHARS = 2000
MAX_MISMATCHES = 20


def _controller_verdict(transcript: Transcript) -> tuple[RunStatus, str] | None:
    """What the controller saw for itself, which outranks anything the runner said."""
    hit = transcript.deadline_hit
    if hit == "cancelled":
        return RunStatus.CANCELLED, "cancelled by request"
    if hit == "stream":
        return RunStatus.OUTPUT_EXCEEDED, "the sandbox's output stream exceeded its budget"
    if hit in ("starting", "installing"):
        return RunStatus.INSTALL_FAILED, "requirements did not install within the install timeout"
    if hit is not None:
        return RunStatus.TIMED_OUT, f"killed at the deadline (phase {hit})"
    frame = transcript.result
    if transcript.exit_state.oom_killed or (frame is not None and (frame.oom_kills or 0) > 0):
        return RunStatus.MEMORY_EXCEEDED, "the memory limit was reached"
    if frame is None:
        tail = transcript.runner_stderr[-2000:].decode("utf-8", "replace").strip()
        code = transcript.exit_state.exit_code
        message = f"the sandbox ended without a result (container exit code {code})"
        return RunStatus.ERROR, message + (f": {tail}" if tail else "")
    return None


def _runner_verdict(frame: ResultFrame, install_timeout_s: float) -> tuple[RunStatus, str | None]:
    if frame.error:
        return RunStatus.ERROR, frame.error[:MAX_ERROR_CHARS]
    install = frame.install
    if install is None:
        return RunStatus.ERROR, "the sandbox's result has no install report"
    if not install.ok:
        return RunStatus.INSTALL_FAILED, install_error(install, timeout_s=install_timeout_s)
    if frame.verify is not None and not frame.verify.ok:
        missing = ", ".join(frame.verify.missing)
        return (
            RunStatus.INSTALL_FAILED,
            f"installed but not found in the run's environment: {missing}",
        )
    execute = frame.execute
    if execute is not None and execute.timed_out:
        return RunStatus.TIMED_OUT, "the code ran past its timeout"
    if execute is not None and execute.output_exceeded:
        return RunStatus.OUTPUT_EXCEEDED, "output passed its cap"
    if execute is not None and execute.exit_code == 0:
        return RunStatus.SUCCEEDED, None
    return RunStatus.FAILED, None


def classify(transcript: Transcript, *, install_timeout_s: float) -> tuple[RunStatus, str | None]:
    """Decide the status of a run from what the controller saw and what the runner said."""
    verdict = _controller_verdict(transcript)
    if verdict is not None:
        return verdict
    assert transcript.result is not None
    return _runner_verdict(transcript.result, install_timeout_s)


def _exit_code(frame: ResultFrame) -> int | None:
    execute = frame.execute
    if execute is None:
        return None
    if execute.exit_code is None and execute.signal is not None:
        return -execute.signal
    return execute.exit_code


def _code_seconds(transcript: Transcript) -> float:
    """The runner's measure of the code, else (killed before it reported) the controller's."""
    frame = transcript.result
    if frame is not None and frame.execute is not None:
        return frame.execute.duration_s
    return transcript.code_s or 0.0


def _environment(frame: ResultFrame) -> EnvironmentInfo:
    env = frame.environment
    described = env.model_dump() if env is not None else {}
    return EnvironmentInfo(
        **described,
        sandbox_removed=frame.sandbox_removed,
        mismatches=[m[:500] for m in frame.mismatch[:MAX_MISMATCHES]],
        preimported=list(frame.execute.preimported) if frame.execute is not None else [],
    )


def _value(execute: ExecuteSection | None, max_bytes: int) -> DisplayOutput | None:
    """The last expression's value, when the code ran to its end and left one."""
    if execute is None or execute.value is None or execute.exit_code != 0:
        return None
    return execute.value.as_output(max_bytes)


def run_result(
    run_id: str, image: str, request: RunRequest, transcript: Transcript, settings: Settings
) -> RunResult:
    """The `RunResult` of one run's sandbox (install details of a cached env are added later)."""
    status, error = classify(transcript, install_timeout_s=settings.install_timeout_s)
    frame = transcript.result or ResultFrame(k="result")
    collector = transcript.artifacts
    collector.finish(frame.artifacts)
    install = frame.install
    execute = frame.execute
    log_limit = settings.install_log_limit_bytes
    return RunResult(
        id=run_id,
        status=status,
        exit_code=_exit_code(frame),
        stdout=transcript.stdout.text,
        stderr=transcript.stderr.text,
        stdout_truncated=transcript.stdout.cut
        or (execute is not None and execute.stdout_truncated),
        stderr_truncated=transcript.stderr.cut
        or (execute is not None and execute.stderr_truncated),
        timings=Timings(
            install_s=round(install.duration_s, 4) if install is not None else 0.0,
            execute_s=round(_code_seconds(transcript), 4),
        ),
        install=InstallReport(
            requirements=list(request.requirements),
            packages=list(frame.verify.packages) if frame.verify is not None else [],
            installer=install.installer if install is not None else None,
            fallback_triggered=install is not None and install.fallback_triggered,
            mode="per_run" if install is not None and install.installer else None,
            log_tail=install.log_tail[-log_limit:] if install is not None else "",
        ),
        environment=_environment(frame),
        artifacts=collector.artifacts,
        artifacts_skipped=collector.skipped,
        artifacts_truncated=collector.truncated,
        image=image,
        error=error,
        cpu_seconds=None if transcript.cpu_s is None else round(transcript.cpu_s, 4),
        result=_value(execute, settings.display_max_bytes),
    )


def install_failed_result(
    run_id: str,
    image: str,
    request: RunRequest,
    install: InstallSection | None,
    error: str,
    settings: Settings,
) -> RunResult:
    """The result of a run whose requirements did not install in the cache (no code ran)."""
    section = install or InstallSection()
    return RunResult(
        id=run_id,
        status=RunStatus.INSTALL_FAILED,
        install=InstallReport(
            requirements=list(request.requirements),
            installer=section.installer or settings.installer,
            fallback_triggered=section.fallback_triggered,
            log_tail=section.log_tail[-settings.install_log_limit_bytes :],
            mode="cache",
        ),
        timings=Timings(install_s=round(section.duration_s, 4)),
        image=image,
        error=error[:MAX_ERROR_CHARS],
    )
