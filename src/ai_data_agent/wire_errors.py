"""Errors of the tree across a wire: which class an answer's code (or status) stands for,
and that class raised again with the answer's context.

    error = rebuild_error("session_busy", "a cell is running", status=409)   # SessionBusy
    error = rebuild_error(None, "502 Bad Gateway", status=502)               # ServerError
    error_class(404, "file_not_found")                                        # FileNotFound

The daemon answers each class of `ai_data_agent.errors` with its status and stable
code (``service/http_errors.py``); whoever reads such an answer again (the client,
from an HTTP answer; an API node, from a call a worker recorded as failed) raises
the same class with this one table. A code this table does not know falls back
to the status (an older or newer daemon, a proxy's page), then to `ServerError`.
"""

from __future__ import annotations

from ai_data_agent.api_models import ErrorDetail
from ai_data_agent.errors import (
    AiDataAgentError,
    CheckpointFailed,
    DatasetInUse,
    FileNotFound,
    Forbidden,
    InstallFailed,
    NotFound,
    NotReady,
    NoWorker,
    QueueFull,
    QuotaExceeded,
    RequestRejected,
    RequestTooLarge,
    ServerError,
    SessionBusy,
    SessionError,
    SessionGone,
    SessionLimit,
    Unauthorized,
)

__all__ = ["HTTP_ERRORS", "error_class", "rebuild_error"]

# The classes raised again from an answer, by their code (or status).
HTTP_ERRORS: tuple[type[AiDataAgentError], ...] = (
    RequestRejected,
    RequestTooLarge,
    InstallFailed,
    Unauthorized,
    Forbidden,
    NotFound,
    FileNotFound,
    QueueFull,
    QuotaExceeded,
    DatasetInUse,
    SessionBusy,
    SessionGone,
    SessionLimit,
    CheckpointFailed,
    NotReady,
    NoWorker,
    ServerError,
)
_BY_CODE = {cls.default_code: cls for cls in HTTP_ERRORS}
# By status alone (a body that is not ours): 422 is a body that did not validate.
_BY_STATUS = {
    400: RequestRejected,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: SessionBusy,
    410: SessionGone,
    413: RequestTooLarge,
    422: RequestRejected,
    429: QueueFull,
    503: NotReady,
}


def error_class(status: int | None, code: str | None) -> type[AiDataAgentError]:
    """The class of an error answer: by its stable code, else by its status, else `ServerError`."""
    return _BY_CODE.get(code) or _BY_STATUS.get(status or 0) or ServerError


def rebuild_error(
    code: str | None,
    message: str,
    *,
    status: int | None = None,
    retry_after: float | None = None,
    session_id: str | None = None,
    run_id: str | None = None,
    usage: ErrorDetail | None = None,
) -> AiDataAgentError:
    """The error an answer stands for (`error_class`), with the context it carried.

    ``status`` is the HTTP status it arrived in (None when it did not come over HTTP);
    ``retry_after`` counts for `QueueFull` and `SessionLimit`, ``session_id`` for the
    session errors, ``run_id`` for any, the ``quota``, ``limit`` and ``used`` of ``usage``
    (the answer's error body) for `QuotaExceeded`.
    """
    cls = error_class(status, code)
    error: AiDataAgentError
    if issubclass(cls, RequestRejected):
        error = cls(None, message, code=code, status_code=status)
    elif issubclass(cls, SessionLimit):
        error = cls(
            message, retry_after=retry_after, session_id=session_id, code=code, status_code=status
        )
    elif issubclass(cls, QuotaExceeded):
        quota, limit, used = (usage.quota, usage.limit, usage.used) if usage else (None,) * 3
        error = cls(
            message,
            quota=quota,
            limit=limit,
            used=used,
            retry_after=retry_after,
            code=code,
            status_code=status,
        )
    elif issubclass(cls, QueueFull):
        error = cls(message, retry_after=retry_after, code=code, status_code=status)
    elif issubclass(cls, SessionError):
        error = cls(message, session_id=session_id, code=code, status_code=status)
    else:
        error = cls(message, code=code, status_code=status)
    error.run_id = run_id or error.run_id
    return error
