"""One exception tree for the whole package.

Bad user code is never an exception: it is a `RunResult` with a status. These
classes are for input the server refuses and for host or Docker failures::

    AiDataAgentError
    ├── RequestRejected        a request breaks a server policy (field, reason)
    │   └── RequestTooLarge    ... by its size: files, counts (HTTP 413)
    ├── ConfigurationError     settings that cannot work (missing image, CA file, ...)
    ├── SessionError           a session cannot take this call (session_id)
    │   ├── SessionBusy        a cell is running (HTTP 409)
    │   ├── SessionGone        closed, expired or lost (HTTP 410)
    │   └── SessionLimit       no room for another session (HTTP 429)
    ├── InstallFailed          requirements did not install (report; HTTP 422)
    └── ExecutorError          host or Docker failure during a run (run_id, container_id, step)
        └── DockerUnavailable  the engine cannot be reached at all

Docker and requests exceptions are translated where they are raised (the
executor's Docker backend), always ``raise ... from exc``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # models imports this module
    from ai_data_agent.models import InstallReport

__all__ = [
    "AiDataAgentError",
    "ConfigurationError",
    "DockerUnavailable",
    "ExecutorError",
    "InstallFailed",
    "RequestRejected",
    "RequestTooLarge",
    "SessionBusy",
    "SessionError",
    "SessionGone",
    "SessionLimit",
]


class AiDataAgentError(Exception):
    """Base of every error this package raises on purpose."""


class RequestRejected(AiDataAgentError):
    """A run request that breaks a server policy; nothing was started."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class RequestTooLarge(RequestRejected):
    """A request over a size or count cap (input files and the like)."""


class ConfigurationError(AiDataAgentError):
    """Settings or host state that make runs impossible; the message names the fix."""


class SessionError(AiDataAgentError):
    """A session that cannot take this call."""

    def __init__(self, message: str, *, session_id: str | None = None) -> None:
        super().__init__(message)
        self.session_id = session_id


class SessionBusy(SessionError):
    """A cell or another call is in progress; nothing was queued."""


class SessionGone(SessionError):
    """The session was closed, expired or lost; it takes no more calls."""


class SessionLimit(SessionError):
    """The server holds as many sessions (or as much session memory) as it may."""


class InstallFailed(AiDataAgentError):
    """Requirements that did not install; ``report`` is the installer's (an ``InstallReport``)."""

    def __init__(self, message: str, *, report: InstallReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class ExecutorError(AiDataAgentError):
    """A host or Docker failure during a run.

    Attributes:
        run_id: the run this happened in.
        container_id: the container, when one existed.
        step: what the executor was doing (``image``, ``create``, ``start``,
            ``attach``, ``install``, ``network``, ``execute``, ``collect``, ``remove``).
    """

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        container_id: str | None = None,
        step: str | None = None,
    ) -> None:
        context = ", ".join(
            f"{k}={v}"
            for k, v in (
                ("run", run_id),
                ("container", container_id and container_id[:12]),
                ("step", step),
            )
            if v
        )
        super().__init__(f"{message} ({context})" if context else message)
        self.message = message
        self.run_id = run_id
        self.container_id = container_id
        self.step = step


class DockerUnavailable(ExecutorError):
    """The Docker engine cannot be reached (not running, no permission, wrong host)."""
