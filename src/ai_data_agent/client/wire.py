"""The client's side of the HTTP wire: errors from answers, Server-Sent Events, ids in paths.

raise error_from_response(response, run_id=run_id)   # the tree's error for a non-2xx
for name, data in read_events(response): ...          # an SSE stream as (name, JSON)
url = f"/v1/runs/{segment(run_id)}"                    # no id may change the route
"""

from __future__ import annotations

import email.utils
import json
import math
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from ai_data_agent.api_models import ErrorBody, ErrorDetail
from ai_data_agent.errors import AiDataAgentError, ServerError
from ai_data_agent.wire_errors import rebuild_error

__all__ = ["error_from_response", "invalid_response", "parse", "read_events", "segment"]

MAX_MESSAGE_CHARS = 2000
ModelT = TypeVar("ModelT", bound=BaseModel)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number, or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def error_from_response(response: httpx.Response, *, run_id: str | None = None) -> AiDataAgentError:
    """The error of the tree for a non-2xx answer (`ai_data_agent.wire_errors`): by its
    code, else by its status.

    The body counts only if it is exactly an `ErrorBody`; anything else (an HTML
    page from a proxy, a traceback) is dropped for the status line.
    """
    status = response.status_code
    detail: ErrorDetail | None
    try:
        detail = ErrorBody.model_validate_json(response.content, strict=True).error
        code: str | None = detail.code
        message = detail.message[:MAX_MESSAGE_CHARS]
    except ValidationError:
        detail, code = None, None
        message = f"{status} {response.reason_phrase}".strip()
    retry_after = _retry_after(response.headers.get("retry-after"))
    error = rebuild_error(code, message, status=status, retry_after=retry_after, usage=detail)
    error.run_id = run_id
    return error


def parse(response: httpx.Response, model: type[ModelT]) -> ModelT:
    """The answer's body as ``model``.

    Raises:
        ServerError: it is not one (``invalid_response``).
    """
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise invalid_response(f"the answer is not a valid {model.__name__}", response) from exc


def read_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """Server-Sent Events of a streaming response, as (name, JSON data)."""
    name, data = "message", ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            data += line[len("data: ") :]
        elif not line and data:
            yield name, json.loads(data)
            name, data = "message", ""


def invalid_response(message: str, response: httpx.Response) -> ServerError:
    return ServerError(message, code="invalid_response", status_code=response.status_code)


def segment(value: str) -> str:
    """A run or session id as one URL path segment: no id may change the route."""
    if value in ("", ".", ".."):
        raise ValueError(f"not an id: {value!r}")
    return urllib.parse.quote(value, safe="")
