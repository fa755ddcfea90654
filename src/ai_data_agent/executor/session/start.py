"""Starting a session's sandbox: the container, its job and files, and the kernel's first word.

    started = start_kernel(provider, session_id, limits, request, env, image)
    if isinstance(started, Vanished): ...   # the cached environment is gone: install it again
    wire, generation = started

The sandbox is opened as a run's is (`SandboxProvider.open_sandbox`: from the
warm pool when one matches; the pool refills once the kernel is up, or, for a
session that goes on from a checkpoint, once it is restored). Until the kernel says it started, every failure
removes the container and releases the environment, so a failed start leaves
nothing behind.
"""

from __future__ import annotations

import time

from ai_data_agent.errors import ExecutorError, SessionGone
from ai_data_agent.executor.env import CachedEnv, Vanished
from ai_data_agent.executor.frames import KernelFrame, ResultFrame
from ai_data_agent.executor.jobs import FileEntry, session_job
from ai_data_agent.executor.session.provider import SandboxOrder, SandboxProvider
from ai_data_agent.executor.session.wire import SessionWire
from ai_data_agent.models import Limits
from ai_data_agent.session_models import SessionRequest

__all__ = ["START_WAIT_S", "start_kernel"]

START_WAIT_S = 120.0


def start_kernel(
    provider: SandboxProvider,
    session_id: str,
    limits: Limits,
    request: SessionRequest,
    env: CachedEnv | None,
    image: str,
    generation: int = 0,
) -> tuple[SessionWire, int] | Vanished:
    """The sandbox with its kernel up, and the kernel's generation; `Vanished` when the
    cached environment turned out to be gone (nothing is left behind then either).

    Raises:
        ExecutorError: Docker failed, the runner refused, or no kernel started.
    """
    settings = provider.settings
    job = session_job(settings, request.env, FileEntry.of(request.files), env.path if env else None)
    job.generation = generation  # a resumed session's kernels count on from its checkpoint's
    inputs = [item.data for item in request.files]
    lifetime = settings.session_max_lifetime_s
    link = provider.open_sandbox(
        SandboxOrder(
            session_id, limits, image, job, inputs, lifetime_s=lifetime, datasets=request.datasets
        )
    )
    wire = SessionWire(link)
    started: int | Vanished | None = None
    try:
        started = _wait_started(wire, session_id, env)
    finally:
        if not generation:  # one that goes on from a checkpoint settles once restored
            link.settled()
        if not isinstance(started, int):
            wire.close()
            if env is not None and provider.environments is not None:
                provider.environments.release(env.key)
    return (wire, started) if isinstance(started, int) else started


def _wait_started(wire: SessionWire, session_id: str, env: CachedEnv | None) -> int | Vanished:
    """The generation of the kernel once it is up; `Vanished` when the cached environment is gone.

    Raises:
        ExecutorError: the runner refused, or no kernel started.
    """
    try:
        for frame in wire.frames(time.monotonic() + START_WAIT_S):
            if isinstance(frame, KernelFrame):
                return frame.generation
            if isinstance(frame, ResultFrame):  # refused, or no kernel could start
                if frame.env_missing and env is not None:
                    return Vanished(env.key)
                raise ExecutorError(
                    f"the session did not start: {frame.error or 'no kernel'}",
                    run_id=session_id,
                    step="session",
                )
    except SessionGone as exc:
        raise ExecutorError(
            f"the session did not start: {exc}", run_id=session_id, step="session"
        ) from exc
    raise AssertionError("unreachable: frames() raises at its deadline")
