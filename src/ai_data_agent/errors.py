"""One exception tree for the whole package, the same on both sides of the HTTP API.

Bad user code is never an exception: it is a `RunResult` with a status. These
classes are for requests that are refused, for a daemon that cannot take or
find a run, and for host, Docker or network failures. An error the daemon
answers with is raised again, as the same class, by the client that gets the
answer (`ai_data_agent.wire_errors`); the daemon's HTTP layer
(``service/http_errors.py``) answers each class with the status and stable code
below, and anything else with ``500 internal`` and no detail::

    AiDataAgentError                    code               HTTP
    ├── RequestRejected                 invalid_request    400 (422: the body does not validate)
    │   ├── RequestTooLarge             payload_too_large  413  body, input files, counts
    │   └── EgressRefused               invalid_request    422  a host not on the egress allow-list
    ├── InstallFailed                   install_failed     422  requirements did not install
    ├── Unauthorized                    unauthorized       401  token missing, wrong, revoked, expired
    ├── Forbidden                       forbidden          403  an admin's call by an agent tenant
    ├── NotFound                        not_found          404  no such run, session, artifact
    │   └── FileNotFound                file_not_found     404  path: no such file in a session
    ├── QueueFull                       queue_full         429  retry_after (``Retry-After``)
    │   └── QuotaExceeded               quota_exceeded     429  a tenant's quota, limit, used
    ├── DatasetInUse                    dataset_in_use     409  a live session mounts it
    ├── SessionError                    -                  -    session_id
    │   ├── SessionBusy                 session_busy       409  another call is in progress
    │   ├── SessionGone                 session_gone       410  closed, expired or lost
    │   ├── SessionLimit                session_limit      429  no room; retry_after
    │   └── CheckpointFailed            checkpoint_failed  422  not taken, or refused (its MAC)
    ├── NotReady                        not_ready          503  starting, stopping, store unusable
    │   └── NoWorker                    no_worker          503  a cluster with no live worker
    ├── ServerError                     internal           500  failed, or answered outside the API
    ├── ServerUnreachable               unreachable        -    no HTTP answer at all (client)
    ├── RunIncomplete                   (its status)       -    a wait ended without a result
    ├── ConfigurationError              not_ready          503  settings that cannot work
    └── ExecutorError                   not_ready          503  host or Docker failure (in a
        │                                                       run: its ``error`` status)
        └── DockerUnavailable           not_ready          503  the engine cannot be reached

Every error has ``message``, ``code`` (the stable code, or None), ``status_code``
(the HTTP status of the answer it arrived in; None when raised in this process)
and ``run_id`` (the run concerned, when there is one); the classes add their own
context (``field``/``reason``, ``path``, ``retry_after``, ``quota``/``limit``/``used``,
``session_id``, ``report``, ``record``, ``container_id``/``step``).

Docker, requests and httpx exceptions are translated where raised, ``raise ... from exc``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from ai_data_agent.api_models import RunRecord
from ai_data_agent.models import InstallReport

__all__ = [
    "AiDataAgentError",
    "CheckpointFailed",
    "ConfigurationError",
    "DatasetInUse",
    "DockerUnavailable",
    "EgressRefused",
    "ExecutorError",
    "FileNotFound",
    "Forbidden",
    "InstallFailed",
    "NoWorker",
    "NotFound",
    "NotReady",
    "QueueFull",
    "QuotaExceeded",
    "RequestRejected",
    "RequestTooLarge",
    "RunIncomplete",
    "ServerError",
    "ServerUnreachable",
    "SessionBusy",
    "SessionError",
    "SessionGone",
    "SessionLimit",
    "Unauthorized",
]

MAX_PROBLEMS = 20  # validation problems named in one message
VALUE_ERROR_PREFIX = "Value error, "  # pydantic's, in front of a validator's own words


class AiDataAgentError(Exception):
    """Base of every error this package raises on purpose.

    Attributes:
        message: what went wrong, for people (never a traceback).
        code: the stable, machine-readable code (``queue_full``, ...), or None.
        status_code: the HTTP status it arrived in; None when raised in this process.
        run_id: the run concerned, when there is one.
    """

    default_code: ClassVar[str | None] = None
    http_status: ClassVar[int | None] = None  # what the daemon answers; None: 500 internal

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        run_id: str | None = None,
    ) -> None:
        self.message = message
        self.code = code or self.default_code
        self.status_code = status_code
        self.run_id = run_id
        if status_code is not None:
            message = f"HTTP {status_code} {self.code}: {message}"
        super().__init__(message)


class RequestRejected(AiDataAgentError):
    """A run request that breaks a rule or a server policy; nothing was started or recorded.
    ``field`` is the part at fault (``timeout_s``, ``files.0``, ``body.code``) or None,
    ``reason`` what is wrong with it."""

    default_code = "invalid_request"
    http_status = 400

    def __init__(
        self,
        field: str | None,
        reason: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(
            f"{field}: {reason}" if field else reason, code=code, status_code=status_code
        )
        self.field = field
        self.reason = reason

    @classmethod
    def from_errors(cls, errors: Iterable[Mapping[str, Any]]) -> RequestRejected:
        """The rejection for pydantic's validation errors (``exc.errors()``), in our words.

        One problem names its location as ``field``; several are listed in ``reason``
        as ``location: problem`` pairs. Input values are never echoed.
        """
        problems = [_problem(error) for error in errors]
        if len(problems) == 1:
            location, text = problems[0]
            return cls(location or None, text)
        listed = [f"{loc}: {text}" if loc else text for loc, text in problems[:MAX_PROBLEMS]]
        return cls(None, "; ".join(listed) or "invalid request")


def _problem(error: Mapping[str, Any]) -> tuple[str, str]:
    location = ".".join(str(part) for part in error.get("loc", ()))
    text = str(error.get("msg", "invalid"))
    return location, text.removeprefix(VALUE_ERROR_PREFIX)


class RequestTooLarge(RequestRejected):
    """A request over a size or count cap: its body, its input files and the like."""

    default_code = "payload_too_large"
    http_status = 413


class EgressRefused(RequestRejected):
    """``network`` asks for a host the server's egress allow-list does not give (the reason
    names it), or for egress where it is off."""

    http_status = 422


class InstallFailed(AiDataAgentError):
    """Requirements that did not install (a session's); nothing was started or changed.
    ``report`` is the installer's `InstallReport`, when this process has it."""

    default_code = "install_failed"
    http_status = 422

    def __init__(
        self,
        message: str,
        *,
        report: InstallReport | None = None,
        code: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, code=code, status_code=status_code)
        self.report = report


class Unauthorized(AiDataAgentError):
    """The daemon wants a bearer token it did not get (missing, malformed or wrong)."""

    default_code = "unauthorized"
    http_status = 401


class Forbidden(AiDataAgentError):
    """An admin's call (tenants, tokens, the audit log) made with an agent tenant's token."""

    default_code = "forbidden"
    http_status = 403


class NotFound(AiDataAgentError):
    """No run with that id (or retention removed it), no such artifact, or no such route."""

    default_code = "not_found"
    http_status = 404


class FileNotFound(NotFound):
    """No such file in a session's working directory; ``path`` names it, when known."""

    default_code = "file_not_found"

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, code=code, status_code=status_code)
        self.path = path


class QueueFull(AiDataAgentError):
    """Every worker is busy and the queue is full; nothing was recorded: retry after
    ``retry_after`` seconds (what the daemon suggests, when it said)."""

    default_code = "queue_full"
    http_status = 429

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, code=code, status_code=status_code)
        self.retry_after = retry_after


class QuotaExceeded(QueueFull):
    """A tenant's ``quota`` (``concurrent_sessions``, ...) is used up: ``used`` of ``limit``;
    nothing was recorded: retry when a run or session ends, or older CPU use ages out."""

    default_code = "quota_exceeded"

    def __init__(
        self,
        message: str,
        *,
        quota: str | None = None,
        limit: float | None = None,
        used: float | None = None,
        retry_after: float | None = None,
        code: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after, code=code, status_code=status_code)
        self.quota, self.limit, self.used = quota, limit, used


class DatasetInUse(AiDataAgentError):
    """A dataset (or version) that a live session mounts: not deleted unless forced."""

    default_code = "dataset_in_use"
    http_status = 409


class SessionError(AiDataAgentError):
    """A session that cannot take this call; ``session_id`` names it, when known."""

    def __init__(
        self,
        message: str,
        *,
        session_id: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, code=code, status_code=status_code)
        self.session_id = session_id


class SessionBusy(SessionError):
    """A cell or another call is in progress; nothing was queued."""

    default_code = "session_busy"
    http_status = 409


class SessionGone(SessionError):
    """The session was closed, expired or lost; it takes no more calls."""

    default_code = "session_gone"
    http_status = 410

    @classmethod
    def ended(cls, session_id: str, status: str | None) -> SessionGone:
        """The one wording for a session that takes no calls: its status, or ``unknown``."""
        return cls(f"session {session_id[:64]} is {status or 'unknown'}", session_id=session_id)


class SessionLimit(SessionError):
    """The server holds as many sessions (or as much session memory) as it may; retry
    after ``retry_after`` seconds (what the daemon suggests, when it said)."""

    default_code = "session_limit"
    http_status = 429

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        session_id: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, session_id=session_id, code=code, status_code=status_code)
        self.retry_after = retry_after


class CheckpointFailed(SessionError):
    """A checkpoint that could not be taken (the serialiser failed or ran out of time) or
    that a resume refuses (a blob no longer matches what the daemon signed). The session
    itself is unharmed by a failed checkpoint."""

    default_code = "checkpoint_failed"
    http_status = 422


class NotReady(AiDataAgentError):
    """The daemon cannot take runs now: starting, shutting down, store or token file unusable."""

    default_code = "not_ready"
    http_status = 503


class NoWorker(NotReady):
    """A cluster with no live worker: nothing executes now (an admitted run stays queued)."""

    default_code = "no_worker"


class ServerError(AiDataAgentError):
    """The daemon failed (500 ``internal``), or answered outside its API (``invalid_response``)."""

    default_code = "internal"
    http_status = 500


class ServerUnreachable(AiDataAgentError):
    """No HTTP answer: connection refused, name not found, TLS failure or a timeout."""

    default_code = "unreachable"


class RunIncomplete(AiDataAgentError):
    """A wait for a run ended without its result: the deadline passed (code
    ``wait_timeout``), or the run ended without one (code: its status, e.g.
    ``cancelled`` while queued, ``interrupted`` by a restart). ``record`` is the run's
    record as last seen."""

    default_code = "incomplete"

    def __init__(self, message: str, *, record: RunRecord, code: str | None = None) -> None:
        super().__init__(message, code=code, run_id=record.id)
        self.record = record


class ConfigurationError(AiDataAgentError):
    """Settings or host state that make runs impossible; the message names the fix."""

    default_code = "not_ready"
    http_status = 503


class ExecutorError(AiDataAgentError):
    """A host or Docker failure during ``run_id``, in ``container_id`` (when one existed),
    at ``step``: what the executor was doing (``image``, ``create``, ``start``, ``attach``,
    ``install``, ``network``, ``execute``, ``collect``, ``remove``)."""

    default_code = "not_ready"
    http_status = 503

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        container_id: str | None = None,
        step: str | None = None,
    ) -> None:
        parts = (("run", run_id), ("container", container_id and container_id[:12]), ("step", step))
        context = ", ".join(f"{k}={v}" for k, v in parts if v)
        super().__init__(f"{message} ({context})" if context else message, run_id=run_id)
        self.message = message
        self.container_id = container_id
        self.step = step


class DockerUnavailable(ExecutorError):
    """The Docker engine cannot be reached (not running, no permission, wrong host)."""
