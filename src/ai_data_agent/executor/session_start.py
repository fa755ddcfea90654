"""Starting a session's sandbox: the container, its job and files, and the kernel's first word.

    started = launch(executor, session_id, limits, request, env)
    if started is None: ...      # the cached environment is gone: install it again
    wire, generation, egress = started     # egress: the session's lease, closed at its end

The container comes from the warm pool when one matches (a session's container
is a run's, with a longer deadline label). Until the kernel says it started,
every failure removes the container and releases the environment, so a
failed start leaves nothing behind.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from loguru import logger

from ai_data_agent.egress.proxy import EgressLease
from ai_data_agent.errors import ExecutorError, SessionGone
from ai_data_agent.executor.envindex import CachedEnv
from ai_data_agent.executor.frames import KernelFrame, ResultFrame
from ai_data_agent.executor.jobs import FileEntry, egress_job, session_job
from ai_data_agent.executor.protocol import encode_message, new_token
from ai_data_agent.executor.wire import SessionWire
from ai_data_agent.models import Limits
from ai_data_agent.session_models import SessionRequest

if TYPE_CHECKING:
    from ai_data_agent.executor.core import Executor

__all__ = ["START_WAIT_S", "launch"]

START_WAIT_S = 120.0


def launch(
    executor: Executor,
    session_id: str,
    limits: Limits,
    request: SessionRequest,
    env: CachedEnv | None,
) -> tuple[SessionWire, int, EgressLease | None] | None:
    """The sandbox with its kernel up, the kernel's generation, and the session's lease on
    the egress proxy when it has an allow-list (the caller closes it when the session
    ends); None when the cached environment turned out to be gone (nothing is left
    behind then either).

    Raises:
        ExecutorError: Docker failed, the runner refused, or no kernel started.
    """
    settings = executor.settings
    image = executor.backend.resolve_image()
    lifetime = settings.session_max_lifetime_s
    egress = executor.egress_lease(session_id, limits)
    generation = None
    try:
        spec = executor.sandbox_spec(limits, image, session_id, lifetime=lifetime, egress=egress)
        sandbox = executor.driver.sandbox(spec, session_id)
    except BaseException:
        if egress is not None:
            egress.close()
        raise
    token = new_token()
    wire = SessionWire(sandbox, token, session_id)
    try:
        job = session_job(
            settings,
            request.env,
            FileEntry.of(request.files),
            env.path if env else None,
            egress_job(limits),
        )
        job.token = token
        sandbox.send(encode_message(job.encode()))
        for item in request.files:
            sandbox.send(item.data)
        generation = _wait_started(wire, session_id, env is not None)
    finally:
        executor.driver.settled(sandbox)
        if generation is None:
            wire.ended = True
            try:
                sandbox.remove()
            except ExecutorError as exc:
                logger.bind(run_id=session_id).warning("cleanup failed: {}", exc)
            if env is not None and executor.env_cache is not None:
                executor.env_cache.release(env.key)
            if egress is not None:
                egress.close()
    return None if generation is None else (wire, generation, egress)


def _wait_started(wire: SessionWire, session_id: str, has_env: bool) -> int | None:
    """The generation of the kernel once it is up; None when the cached environment is gone.

    Raises:
        ExecutorError: the runner refused, or no kernel started.
    """
    try:
        for frame in wire.frames(time.monotonic() + START_WAIT_S):
            if isinstance(frame, KernelFrame):
                return frame.generation
            if isinstance(frame, ResultFrame):  # refused, or no kernel could start
                if frame.env_missing and has_env:
                    return None
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
