"""HTTP client for the ai-data-agent daemon, for agents and the CLI's ``--server``.

    from ai_data_agent import RunRequest
    from ai_data_agent.client import Client

    with Client("http://127.0.0.1:8000", token="s3cret") as client:
        result = client.run("import six; print(six.__version__)", requirements=["six"])
        print(result.status, result.stdout)

        run_id = client.submit("import time; time.sleep(5)")   # answers at once
        result = client.wait(run_id, timeout=60)

        result = client.run_request(RunRequest(code="print(1)", timeout_s=5))

Every HTTP error becomes a typed `ClientError`; the server's body is read only
as the documented ``{"error": {"code", "message"}}`` shape, never echoed raw::

    AiDataAgentError
    └── ClientError             status_code, code, message
        ├── InvalidRequest      400/422 invalid_request: the request breaks a rule
        ├── Unauthorized        401 unauthorized: missing or wrong token
        ├── NotFound            404 not_found: no such run
        ├── PayloadTooLarge     413 payload_too_large
        ├── QueueFull           429 queue_full: try again after ``retry_after`` seconds
        ├── NotReady            503 not_ready: the daemon cannot run code now
        ├── ServerError         500 internal, or any other unexpected answer
        ├── ServerUnreachable   no HTTP answer at all (refused, DNS, TLS, timeout)
        └── RunIncomplete       `wait` gave up, or the run ended without a result
"""

from __future__ import annotations

import builtins
import email.utils
import hashlib
import json
import math
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from ai_data_agent.errors import AiDataAgentError
from ai_data_agent.models import (
    Artifact,
    ErrorBody,
    InputFile,
    RunAccepted,
    RunPage,
    RunRecord,
    RunRequest,
    RunResult,
    RunStatus,
)
from ai_data_agent.paths import check_relative_path

__all__ = [
    "Client",
    "ClientError",
    "InvalidRequest",
    "NotFound",
    "NotReady",
    "PayloadTooLarge",
    "QueueFull",
    "RunIncomplete",
    "ServerError",
    "ServerUnreachable",
    "Unauthorized",
]

# How long a waiting `run` may take beyond the code's own timeout: the daemon's
# default install budget (300 s), the runner's verify step (60 s) and slack for
# starting the container. A run whose timeout is unset is assumed to use the
# daemon's default cap (600 s).
RUN_OVERHEAD_S = 390.0
ASSUMED_MAX_TIMEOUT_S = 600.0
# The daemon waits up to 60 s for a cancelled run's container to go.
CANCEL_WAIT_S = 75.0
MAX_MESSAGE_CHARS = 2000
ACTIVE_STATUSES = frozenset({"queued", "running"})
_ARTIFACT_LIST = TypeAdapter(list[Artifact])

ModelT = TypeVar("ModelT", bound=BaseModel)


class ClientError(AiDataAgentError):
    """The daemon refused or failed a call, or could not be reached.

    Attributes:
        status_code: the HTTP status, or None when no answer arrived.
        code: the stable error code (``invalid_request``, ``queue_full``, ...).
        message: a human-readable reason (never a server traceback).
    """

    default_code: ClassVar[str] = "error"

    def __init__(
        self, message: str, *, status_code: int | None = None, code: str | None = None
    ) -> None:
        self.status_code = status_code
        self.code = code or self.default_code
        self.message = message
        prefix = f"HTTP {status_code} {self.code}" if status_code is not None else self.code
        super().__init__(f"{prefix}: {message}")


class InvalidRequest(ClientError):
    default_code = "invalid_request"


class Unauthorized(ClientError):
    default_code = "unauthorized"


class NotFound(ClientError):
    default_code = "not_found"


class PayloadTooLarge(ClientError):
    default_code = "payload_too_large"


class QueueFull(ClientError):
    """The daemon's queue is full. ``retry_after``: seconds it suggests waiting, if it said."""

    default_code = "queue_full"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code)
        self.retry_after = retry_after


class NotReady(ClientError):
    default_code = "not_ready"


class ServerError(ClientError):
    default_code = "internal"


class ServerUnreachable(ClientError):
    """No HTTP answer: connection refused, name not found, TLS failure or a timeout."""

    default_code = "unreachable"


class RunIncomplete(ClientError):
    """`Client.wait` did not get a result: the deadline passed, or the run ended without one
    (cancelled while queued, interrupted by a daemon restart). ``record`` is the last seen."""

    default_code = "incomplete"

    def __init__(self, message: str, *, record: RunRecord, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.record = record


_BY_CODE: dict[str, type[ClientError]] = {
    cls.default_code: cls
    for cls in (InvalidRequest, Unauthorized, NotFound, PayloadTooLarge, QueueFull, NotReady)
}
_BY_STATUS: dict[int, type[ClientError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    404: NotFound,
    413: PayloadTooLarge,
    422: InvalidRequest,
    429: QueueFull,
    503: NotReady,
}


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


def error_from_response(response: httpx.Response) -> ClientError:
    """The typed error for a non-2xx answer.

    The body counts only if it is exactly an `ErrorBody`; anything else (an HTML
    page from a proxy, a traceback) is dropped for the status line.
    """
    try:
        detail = ErrorBody.model_validate_json(response.content, strict=True).error
        code: str | None = detail.code
        message = detail.message[:MAX_MESSAGE_CHARS]
    except ValidationError:
        code = None
        message = f"{response.status_code} {response.reason_phrase}".strip()
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(response.status_code, ServerError)
    if cls is QueueFull:
        return QueueFull(
            message, status_code=response.status_code, code=code,
            retry_after=_retry_after(response.headers.get("retry-after")),
        )  # fmt: skip
    return cls(message, status_code=response.status_code, code=code)


class Client:
    """A synchronous client for one daemon. Thread-safe; reuse one for many calls.

    Args:
        base_url: the daemon, e.g. ``http://127.0.0.1:8000``.
        token: bearer token, if the daemon requires one.
        timeout: seconds for connecting and for every call that does not wait for
            a run (`run` computes its own read timeout from the run's limits).
        transport: an httpx transport to use instead of the network (tests).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    # -- lifecycle ------------------------------------------------------------------
    def close(self) -> None:
        """Release the connection pool. Idempotent."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- runs -----------------------------------------------------------------------
    def run(
        self,
        code: str,
        *,
        requirements: Sequence[str] = (),
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        cpus: float | None = None,
        network: bool = False,
        env: Mapping[str, str] | None = None,
        files: Sequence[InputFile] = (),
        wait_timeout_s: float | None = None,
    ) -> RunResult:
        """Run ``code`` on the daemon and return its result (bad code is a status, not an error).

        The arguments are those of `RunRequest`: limits left unset take the
        daemon's defaults; ``files`` are placed under the run's working directory.

        The call stays open for the whole run: its read timeout is
        ``wait_timeout_s``, by default the code's timeout plus the install
        budget. For runs that may queue for long, prefer `submit` and `wait`.

        Raises:
            InvalidRequest: the request breaks a rule of the daemon (nothing ran).
            QueueFull: the daemon is busy; retry after ``retry_after`` seconds.
            ClientError: any other refusal or failure, as the class tree above.
        """
        body = _submission(code, requirements, timeout_s, memory_mb, cpus, network, env, files)
        return self._run(body, wait_timeout_s)

    def run_request(self, request: RunRequest, *, wait_timeout_s: float | None = None) -> RunResult:
        """`run` for a whole `RunRequest`, with every field it has.

        Raises:
            ClientError: as for `run`.
        """
        return self._run(_request_body(request), wait_timeout_s)

    def submit(
        self,
        code: str,
        *,
        requirements: Sequence[str] = (),
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        cpus: float | None = None,
        network: bool = False,
        env: Mapping[str, str] | None = None,
        files: Sequence[InputFile] = (),
    ) -> str:
        """Queue ``code`` and return the run id at once (``"wait": false``).

        Raises:
            InvalidRequest, QueueFull, ClientError: as for `run`.
        """
        body = _submission(code, requirements, timeout_s, memory_mb, cpus, network, env, files)
        return self._submit(body)

    def submit_request(self, request: RunRequest) -> str:
        """`submit` for a whole `RunRequest`, with every field it has.

        Raises:
            ClientError: as for `run`.
        """
        return self._submit(_request_body(request))

    def get(self, run_id: str) -> RunRecord:
        """The run's record as stored now.

        Raises:
            NotFound: no run has this id (or it was dropped by retention).
        """
        return self._parse(self._request("GET", f"/v1/runs/{_segment(run_id)}"), RunRecord)

    def wait(
        self, run_id: str, *, poll_interval: float = 0.5, timeout: float | None = None
    ) -> RunResult:
        """Poll the run until it is terminal and return its result.

        Raises:
            RunIncomplete: ``timeout`` seconds passed first (code ``wait_timeout``), or
                the run ended without a result (code: its status, e.g. ``cancelled``).
            NotFound: no run has this id.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = self.get(run_id)
            if record.status not in ACTIVE_STATUSES:
                if record.result is None:
                    reason = f": {record.error}" if record.error else ""
                    raise RunIncomplete(
                        f"run {run_id} ended {record.status} without a result{reason}",
                        record=record, code=str(record.status),
                    )  # fmt: skip
                return record.result
            if deadline is not None and time.monotonic() >= deadline:
                raise RunIncomplete(
                    f"run {run_id} still {record.status} after {timeout:g} s",
                    record=record, code="wait_timeout",
                )  # fmt: skip
            pause = poll_interval
            if deadline is not None:
                pause = max(min(pause, deadline - time.monotonic()), 0.0)
            time.sleep(pause)

    def cancel(self, run_id: str) -> RunRecord:
        """Cancel a queued or running run (its container is killed); return the record.

        Raises:
            NotFound: no run has this id.
        """
        # The daemon answers once the container is gone, which may take up to a minute.
        timeout = httpx.Timeout(self.timeout, read=max(self.timeout, CANCEL_WAIT_S))
        response = self._request("DELETE", f"/v1/runs/{_segment(run_id)}", timeout=timeout)
        return self._parse(response, RunRecord)

    def list(
        self, status: RunStatus | str | None = None, *, limit: int = 50, offset: int = 0
    ) -> RunPage:
        """Records newest first, optionally only those with ``status``."""
        params: dict[str, str | int] = {"limit": limit, "offset": offset}
        if status is not None:
            params["status"] = str(status)
        return self._parse(self._request("GET", "/v1/runs", params=params), RunPage)

    # -- artifacts and live events -----------------------------------------------------
    def artifacts(self, run_id: str) -> builtins.list[Artifact]:
        """The files the run left under ``outputs/`` (as its result lists them)."""
        response = self._request("GET", f"/v1/runs/{_segment(run_id)}/artifacts")
        try:
            return _ARTIFACT_LIST.validate_json(response.content)
        except ValidationError as exc:
            raise ServerError(
                "the answer is not a list of artifacts", status_code=response.status_code,
                code="invalid_response",
            ) from exc  # fmt: skip

    def download_artifact(self, run_id: str, artifact: Artifact, directory: Path) -> Path:
        """Save ``artifact`` under ``directory`` (at its relative path); return the file.

        The name is checked like every name from outside, the file is written
        next to its target and renamed only once size and sha256 match.

        Raises:
            ServerError: size or hash differ from the artifact's record.
        """
        target = directory / check_relative_path(artifact.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part")
        digest = hashlib.sha256()
        size = 0
        url = f"/v1/runs/{_segment(run_id)}/artifacts/{urllib.parse.quote(artifact.path)}"
        try:
            with self._http.stream("GET", url) as response:
                if not response.is_success:
                    response.read()
                    raise error_from_response(response)
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > artifact.size:
                            break
                        digest.update(chunk)
                        out.write(chunk)
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise ServerUnreachable(f"cannot download {artifact.path}: {exc}") from exc
        if size != artifact.size or digest.hexdigest() != artifact.sha256:
            partial.unlink(missing_ok=True)
            raise ServerError(
                f"artifact {artifact.path} arrived with a different size or sha256",
                status_code=200, code="invalid_response",
            )  # fmt: skip
        partial.replace(target)
        return target

    def events(self, run_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The run's Server-Sent Events as (name, data): ``status``, ``stdout``,
        ``stderr`` and, last, ``result`` (a `RunResult` as a dict)."""
        timeout = httpx.Timeout(self.timeout, read=None)  # a quiet run sends nothing for a while
        try:
            with self._http.stream(
                "GET", f"/v1/runs/{_segment(run_id)}/events", timeout=timeout
            ) as response:
                if not response.is_success:
                    response.read()
                    raise error_from_response(response)
                name, data = "message", ""
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        name = line[len("event: ") :]
                    elif line.startswith("data: "):
                        data += line[len("data: ") :]
                    elif not line and data:
                        yield name, json.loads(data)
                        name, data = "message", ""
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"lost the event stream of {run_id}: {exc}") from exc

    def run_streaming(
        self, request: RunRequest, on_output: Callable[[str, str], None]
    ) -> RunResult:
        """`run_request`, with ``on_output(stream, text)`` called as output arrives."""
        run_id = self.submit_request(request)
        for name, data in self.events(run_id):
            if name in ("stdout", "stderr"):
                on_output(name, str(data.get("data", "")))
            elif name == "result":
                try:
                    return RunResult.model_validate(data)
                except ValidationError as exc:
                    raise ServerError(
                        "the result event is not a valid RunResult", status_code=200,
                        code="invalid_response",
                    ) from exc  # fmt: skip
        return self.wait(run_id)  # the stream ended early: fall back to polling

    # -- plumbing -------------------------------------------------------------------
    def _run(self, body: dict[str, Any], wait_timeout_s: float | None) -> RunResult:
        if wait_timeout_s is None:
            run_timeout = body.get("timeout_s") or ASSUMED_MAX_TIMEOUT_S
            wait_timeout_s = run_timeout + RUN_OVERHEAD_S + self.timeout
        timeout = httpx.Timeout(self.timeout, read=wait_timeout_s)
        response = self._request("POST", "/v1/runs", json={**body, "wait": True}, timeout=timeout)
        if response.status_code == 202:  # the daemon chose not to hold the line
            accepted = self._parse(response, RunAccepted)
            return self.wait(accepted.id, timeout=wait_timeout_s)
        return self._parse(response, RunResult)

    def _submit(self, body: dict[str, Any]) -> str:
        response = self._request("POST", "/v1/runs", json={**body, "wait": False})
        return self._parse(response, RunAccepted).id

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ServerUnreachable(
                f"no answer from {self._http.base_url} in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise ServerUnreachable(
                f"cannot reach {self._http.base_url}: {type(exc).__name__}: {exc}"
            ) from exc
        if not response.is_success:
            raise error_from_response(response)
        return response

    @staticmethod
    def _parse(response: httpx.Response, model: type[ModelT]) -> ModelT:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise ServerError(
                f"the answer is not a valid {model.__name__}",
                status_code=response.status_code, code="invalid_response",
            ) from exc  # fmt: skip


def _submission(
    code: str,
    requirements: Sequence[str],
    timeout_s: float | None,
    memory_mb: int | None,
    cpus: float | None,
    network: bool,
    env: Mapping[str, str] | None,
    files: Sequence[InputFile],
) -> dict[str, Any]:
    """A `RunRequest` body, sent as given: the daemon validates it (and answers 422
    with reasons), so the client never disagrees with the server it talks to."""
    body: dict[str, Any] = {
        "code": code,
        "requirements": list(requirements),
        "timeout_s": timeout_s,
        "memory_mb": memory_mb,
        "cpus": cpus,
        "network": network,
        "env": dict(env or {}),
    }
    if files:  # only then: a daemon from before input files forbids the field
        body["files"] = [item.model_dump() for item in files]
    return {k: v for k, v in body.items() if v is not None}


def _request_body(request: RunRequest) -> dict[str, Any]:
    # Fields left at their defaults stay out, as in `_submission`: the daemon's
    # defaults apply, and a daemon older than a field still accepts the request.
    return request.model_dump(mode="json", exclude_defaults=True)


def _segment(run_id: str) -> str:
    """``run_id`` as one URL path segment: no id may change the route."""
    if run_id in ("", ".", ".."):
        raise ValueError(f"not a run id: {run_id!r}")
    return urllib.parse.quote(run_id, safe="")
