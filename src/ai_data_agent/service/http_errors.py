"""Every HTTP error as ``{"error": {"code": ..., "message": ...}}``, never a traceback.

    raise ApiError(404, "not_found", f"no run {run_id}")
    install_error_handlers(app)

Codes by status: 400/422 ``invalid_request``, 401 ``unauthorized``, 404
``not_found``, 405 ``method_not_allowed``, 413 ``payload_too_large``, 429
``queue_full``, 503 ``not_ready``, 500 ``internal``. Pydantic validation
errors are summarised as ``location: message`` pairs without echoing input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ai_data_agent.errors import (
    ConfigurationError,
    ExecutorError,
    InstallFailed,
    RequestRejected,
    RequestTooLarge,
    SessionBusy,
    SessionGone,
    SessionLimit,
)
from ai_data_agent.models import ErrorBody, ErrorDetail
from ai_data_agent.service.dispatcher import NotAccepting

__all__ = ["CODES", "ApiError", "error_response", "install_error_handlers"]

CODES = {
    400: "invalid_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    422: "invalid_request",
    429: "queue_full",
    500: "internal",
    503: "not_ready",
}
MAX_MESSAGE = 2000


class ApiError(Exception):
    """An error answer: HTTP status, stable code, message, extra headers."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message[:MAX_MESSAGE]))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:20]:
        location = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{location}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    error = cast(ApiError, exc)
    return error_response(error.status, error.code, error.message, error.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(
        422, "invalid_request", _validation_message(cast(RequestValidationError, exc))
    )


async def _rejected(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, RequestTooLarge):
        return error_response(413, "payload_too_large", str(exc))
    return error_response(400, "invalid_request", str(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    error = cast(StarletteHTTPException, exc)
    status = error.status_code
    code = CODES.get(status, "internal" if status >= 500 else "invalid_request")
    message = error.detail if isinstance(error.detail, str) else code.replace("_", " ")
    return error_response(status, code, message, error.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises after this answer, so the server logs the traceback;
    # the client gets nothing of it.
    return error_response(500, "internal", "internal server error; see the daemon's log")


SESSION_RETRY_AFTER_S = 30  # a session slot frees when one closes or expires


async def _session_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, SessionBusy):
        return error_response(409, "session_busy", str(exc))
    if isinstance(exc, SessionGone):
        return error_response(410, "session_gone", str(exc))
    headers = {"Retry-After": str(SESSION_RETRY_AFTER_S)}
    return error_response(429, "session_limit", str(exc), headers)


async def _install_failed(request: Request, exc: Exception) -> JSONResponse:
    return error_response(422, "install_failed", str(exc))


async def _host_failed(request: Request, exc: Exception) -> JSONResponse:
    # Outside a run (which records it as its status): the engine or the host failed.
    return error_response(503, "not_ready", str(exc))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RequestRejected, _rejected)
    for session_error in (SessionBusy, SessionGone, SessionLimit):
        app.add_exception_handler(session_error, _session_error)
    app.add_exception_handler(InstallFailed, _install_failed)
    for host_error in (ExecutorError, ConfigurationError, NotAccepting):
        app.add_exception_handler(host_error, _host_failed)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
