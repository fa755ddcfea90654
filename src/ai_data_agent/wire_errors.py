"""An error of the tree rebuilt from what crossed a wire: its stable code and its message.

    raise error_from_body("queue_full", "the queue is full", status_code=429, retry_after=5.0)
    raise error_from_body(call.error_code, call.error, session_id=call.session_id)

Whoever answered an error (the daemon over HTTP, a cluster's worker in a row
of the database) sent its code and message; the receiver raises it again as
the same class (`errors.error_class`: by the code, else by the HTTP status),
with the context that class carries. The client rebuilds an HTTP answer with
it, an API node of a cluster a session call's failure.
"""

from __future__ import annotations

from ai_data_agent.errors import (
    AiDataAgentError,
    QueueFull,
    RequestRejected,
    SessionError,
    SessionLimit,
    error_class,
)

__all__ = ["error_from_body"]

INTERNAL_STATUS = 500  # what a code that names no class is taken for


def error_from_body(
    code: str | None,
    message: str,
    *,
    status_code: int | None = None,
    retry_after: float | None = None,
    session_id: str | None = None,
    run_id: str | None = None,
) -> AiDataAgentError:
    """The error that ``code`` and ``message`` stand for.

    Args:
        code: the stable code sent (``queue_full``), or None when there was none.
        message: the message sent, for people.
        status_code: the HTTP status of the answer it arrived in; None when it
            did not come over HTTP (another node's answer in the database).
        retry_after: seconds to wait, for the classes that carry it (`QueueFull`,
            `SessionLimit`).
        session_id: the session concerned, for the session errors.
        run_id: the run concerned.
    """
    cls = error_class(INTERNAL_STATUS if status_code is None else status_code, code)
    error: AiDataAgentError
    if issubclass(cls, RequestRejected):
        error = cls(None, message, code=code, status_code=status_code)
    elif issubclass(cls, SessionLimit):
        error = cls(
            message,
            retry_after=retry_after,
            session_id=session_id,
            code=code,
            status_code=status_code,
        )
    elif issubclass(cls, SessionError):
        error = cls(message, session_id=session_id, code=code, status_code=status_code)
    elif issubclass(cls, QueueFull):
        error = cls(message, retry_after=retry_after, code=code, status_code=status_code)
    else:
        error = cls(message, code=code, status_code=status_code)
    error.run_id = run_id
    return error
