"""Every HTTP error as ``{"error": {"code": ..., "message": ...}}``, never a traceback.

    install_error_handlers(app)
    raise NotFound(f"no run with id {run_id!r}", run_id=run_id)   # in a route: 404 not_found
    response = error_response(RequestTooLarge("body", "larger than 16 bytes"))   # elsewhere

This is the one place that turns exceptions into answers. An error of the
package's tree (`ai_data_agent.errors`) is answered with its class's status and
code: 400 ``invalid_request``, 401 ``unauthorized`` (with a ``WWW-Authenticate``
challenge), 404 ``not_found`` (``file_not_found`` for a session's file), 409 ``session_busy``, 410 ``session_gone``, 413
``payload_too_large``, 422 ``install_failed``, 429 ``queue_full``, ``session_limit``
and ``quota_exceeded`` (with ``Retry-After``; the last names ``quota``, ``limit`` and
``used`` beside the message), 503 ``not_ready`` (host failures outside a run
included) and ``no_worker`` (with the queued run's ``Location``), 500
``internal``. A body or query
that does not validate is 422 ``invalid_request``, its problems summarised as
``location: problem`` pairs without echoing input; the framework's own 404,
405 and 413 are ``not_found``, ``method_not_allowed`` and ``payload_too_large``. Anything else is 500
``internal`` with no detail (the traceback goes to the daemon's log).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException

from ai_data_agent.api_models import ErrorBody, ErrorDetail
from ai_data_agent.errors import (
    AiDataAgentError,
    NoWorker,
    QueueFull,
    QuotaExceeded,
    RequestRejected,
    SessionLimit,
    Unauthorized,
)

__all__ = ["CHALLENGE", "error_event", "error_response", "install_error_handlers"]

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ai-data-agent"'}
MAX_MESSAGE = 2000
INTERNAL = "internal"
INTERNAL_MESSAGE = "internal server error; see the daemon's log"
# The framework's own refusals: an unknown route, a wrong method, a body past its cap
# found while a route reads it (`body_limit`).
_FRAMEWORK_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def error_response(
    error: AiDataAgentError, *, status: int | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The answer to ``error``: its class's status (or ``status``), its code, and its
    message with its context (``str(error)``: an `ExecutorError` names run and step).

    An error without an HTTP status (a host failure) is answered 500 ``internal``
    without its message.
    """
    status = status or error.http_status
    if status is None or error.code is None:
        return _json(500, INTERNAL, INTERNAL_MESSAGE)
    detail = ErrorDetail(code=error.code, message=str(error)[:MAX_MESSAGE])
    if isinstance(error, QuotaExceeded):
        detail.quota, detail.limit, detail.used = error.quota, error.limit, error.used
    return _answer(status, detail, {**_headers(error), **(headers or {})})


def error_event(error: AiDataAgentError) -> str:
    """``error``'s body as an SSE ``error`` event's data, with its status and run."""
    body = ErrorBody(
        error=ErrorDetail(code=error.code or INTERNAL, message=str(error)[:MAX_MESSAGE])
    )
    return json.dumps({**body.model_dump(), "status": error.http_status, "run_id": error.run_id})


def _json(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return _answer(status, ErrorDetail(code=code, message=message[:MAX_MESSAGE]), headers)


def _answer(status: int, detail: ErrorDetail, headers: Mapping[str, str] | None) -> JSONResponse:
    """The error body; a field that is None (a quota's, for other errors) is left out."""
    body = ErrorBody(error=detail).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers)


def _headers(error: AiDataAgentError) -> dict[str, str]:
    if isinstance(error, Unauthorized):
        return dict(CHALLENGE)
    if isinstance(error, QueueFull | SessionLimit) and error.retry_after is not None:
        return {"Retry-After": str(math.ceil(error.retry_after))}
    if isinstance(error, NoWorker) and error.run_id is not None:
        return {"Location": f"/v1/runs/{error.run_id}"}  # the run stays queued there
    return {}


async def _known_error(request: Request, exc: Exception) -> JSONResponse:
    error = cast(AiDataAgentError, exc)
    if error.http_status is None:  # a host failure in a route: a bug, not an answer
        logger.opt(exception=error).error(
            "{} {} failed: {}", request.method, request.url.path, error
        )
    return error_response(error)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = cast(RequestValidationError, exc).errors()
    return error_response(RequestRejected.from_errors(errors), status=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    error = cast(StarletteHTTPException, exc)
    status = error.status_code
    code = _FRAMEWORK_CODES.get(status) or (INTERNAL if status >= 500 else "invalid_request")
    message = error.detail if isinstance(error.detail, str) else code.replace("_", " ")
    return _json(status, code, message, error.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises after this answer, so the server logs the traceback;
    # the client gets nothing of it.
    return _json(500, INTERNAL, INTERNAL_MESSAGE)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AiDataAgentError, _known_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
