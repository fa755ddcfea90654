"""Runs on a daemon: `Client`, the client's front door (and the way into sessions).

    from pathlib import Path
    from ai_data_agent import InputFile, RunRequest
    from ai_data_agent.client import Client

    with Client("http://127.0.0.1:8000", token="s3cret") as client:
        result = client.run("import six; print(six.__version__)", requirements=["six"])
        print(result.status, result.stdout)

        run_id = client.submit("import time; time.sleep(5)")   # answers at once
        result = client.wait(run_id, timeout=60)               # or client.follow(run_id, print)

        data = InputFile.from_bytes("data/sales.csv", Path("sales.csv").read_bytes())
        result = client.run("import os; print(os.listdir('data'))", files=[data])
        for artifact in result.artifacts:                      # what the code left in outputs/
            client.download_artifact(result.id, artifact, Path("out"))

        result = client.run_request(RunRequest(code="print(1)", timeout_s=5))
        print(client.info().limits.timeout_s.max)              # the daemon's limits

Request bodies are the shared models (`RunRequest`, sent as a `RunSubmission`,
see `ai_data_agent.client.requests`), so a request is validated here as the
daemon validates it. What the client must know of the daemon (default timeout,
install budget, how long a cancel takes, its size caps) it reads once from
``GET /v1/info`` (`Connection.info`). A request is checked against those caps
before anything is sent (`RequestTooLarge` without an upload), and input files
travel as multipart parts, their bytes as they are, so the daemon's input file
caps are what limit them.
"""

from __future__ import annotations

import builtins
import functools
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Unpack

import httpx
from pydantic import TypeAdapter, ValidationError

from ai_data_agent.api_models import (
    ACTIVE_RUN_STATUSES,
    RunAccepted,
    RunPage,
    RunRecord,
)
from ai_data_agent.client.connection import Connection
from ai_data_agent.client.datasets import Datasets
from ai_data_agent.client.requests import RunOptions, check_sizes, run_body, run_request
from ai_data_agent.client.sessions import RemoteSession, list_sessions, open_session
from ai_data_agent.client.tenants import Audit, Tenants, Tokens
from ai_data_agent.client.wire import invalid_response, parse, read_events, segment
from ai_data_agent.errors import AiDataAgentError, RunIncomplete, ServerError
from ai_data_agent.models import Artifact, RunRequest, RunResult, RunStatus
from ai_data_agent.paths import check_relative_path
from ai_data_agent.session_models import SessionInfo
from ai_data_agent.wire_errors import rebuild_error

__all__ = ["WAIT_MARGIN_S", "Client"]

# A waiting `run` stays open for the code's timeout and the daemon's install
# timeout (both from /v1/info), plus this for the runner's verify and collect
# steps and for starting the container.
WAIT_MARGIN_S = 120.0
_ARTIFACT_LIST = TypeAdapter(list[Artifact])


class Client(Connection):
    """A synchronous client for one daemon. Thread-safe; reuse one for many calls.

    Args:
        base_url: the daemon, e.g. ``http://127.0.0.1:8000``.
        token: bearer token, if the daemon requires one.
        timeout: seconds for connecting and for every call that does not wait for
            a run (`run` computes its own read timeout from the run's limits).
        transport: an httpx transport to use instead of the network (tests).
    """

    @functools.cached_property
    def datasets(self) -> Datasets:
        """The daemon's datasets: put, list, show, describe, get, delete (`Datasets`)."""
        return Datasets(self)

    # -- an admin's ------------------------------------------------------------------
    @property
    def tenants(self) -> Tenants:
        """Tenants (``/v1/tenants``; an admin's token)."""
        return Tenants(self)

    @property
    def tokens(self) -> Tokens:
        """Tokens (``/v1/tokens``; an admin's token)."""
        return Tokens(self)

    @property
    def audit(self) -> Audit:
        """The audit log (``/v1/audit``; an admin's token)."""
        return Audit(self)

    # -- sessions ---------------------------------------------------------------------
    def session(self, **fields: Any) -> RemoteSession:
        """Start a session on the daemon (fields as `SessionRequest`'s); see `RemoteSession`.

        Raises:
            RequestRejected: the fields do not validate (nothing was sent).
            SessionLimit, InstallFailed, NotReady: the daemon's refusals.
        """
        return open_session(self, **fields)

    def session_of(self, session_id: str) -> RemoteSession:
        """A handle on an existing session (``GET /v1/sessions/{id}``).

        Raises:
            NotFound: no such session.
        """
        response = self.transport.request("GET", f"/v1/sessions/{segment(session_id)}")
        return RemoteSession(self, parse(response, SessionInfo))

    def sessions(self, *, tenant: str | None = None) -> builtins.list[SessionInfo]:
        """Live sessions first, then those that ended, newest first (an admin's token:
        every tenant's, or ``tenant``'s)."""
        return list_sessions(self, tenant=tenant)

    # -- runs -----------------------------------------------------------------------
    def run(
        self, code: str, *, wait_timeout_s: float | None = None, **options: Unpack[RunOptions]
    ) -> RunResult:
        """Run ``code`` on the daemon and return its result (bad code is a status, not an error).

        ``options`` are `RunRequest`'s fields (`ai_data_agent.client.requests.RunOptions`): limits left
        unset take the daemon's defaults; ``files`` are placed under the run's working directory.

        The call stays open for the whole run: its read timeout is
        ``wait_timeout_s``, by default the run's timeout plus the daemon's
        install timeout and a margin. For runs that may queue for long, prefer
        `submit` and `wait`.

        Raises:
            RequestRejected: the request breaks a rule (here or at the daemon; nothing ran).
            QueueFull: the daemon is busy; retry after ``retry_after`` seconds.
            AiDataAgentError: any other refusal or failure, as the tree in `ai_data_agent.errors`.
        """
        request = run_request(code, **options)
        return self.run_request(request, wait_timeout_s=wait_timeout_s)

    def run_request(self, request: RunRequest, *, wait_timeout_s: float | None = None) -> RunResult:
        """`run` for a whole `RunRequest`.

        Raises:
            AiDataAgentError: as for `run`.
        """
        if wait_timeout_s is None:
            wait_timeout_s = self._wait_budget(request)
        timeout = self.read_timeout(wait_timeout_s)
        response = self._post_run(request, wait=True, timeout=timeout)
        if response.status_code == 202:  # the daemon chose not to hold the line
            accepted = parse(response, RunAccepted)
            return self.wait(accepted.id, timeout=wait_timeout_s)
        return parse(response, RunResult)

    def submit(self, code: str, **options: Unpack[RunOptions]) -> str:
        """Queue ``code`` and return the run id at once (``"wait": false``).

        Raises:
            RequestRejected, QueueFull, AiDataAgentError: as for `run`.
        """
        request = run_request(code, **options)
        return self.submit_request(request)

    def submit_request(self, request: RunRequest) -> str:
        """`submit` for a whole `RunRequest`.

        Raises:
            AiDataAgentError: as for `run`.
        """
        return parse(self._post_run(request, wait=False), RunAccepted).id

    def get(self, run_id: str) -> RunRecord:
        """The run's record as stored now.

        Raises:
            NotFound: no run has this id (or it was dropped by retention).
        """
        response = self.transport.request("GET", f"/v1/runs/{segment(run_id)}", run_id=run_id)
        return parse(response, RunRecord)

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
            if record.status not in ACTIVE_RUN_STATUSES:
                if record.result is None:
                    reason = f": {record.error}" if record.error else ""
                    raise RunIncomplete(
                        f"run {run_id} ended {record.status} without a result{reason}",
                        record=record,
                        code=str(record.status),
                    )
                return record.result
            if deadline is not None and time.monotonic() >= deadline:
                raise RunIncomplete(
                    f"run {run_id} still {record.status} after {timeout:g} s",
                    record=record,
                    code="wait_timeout",
                )
            pause = poll_interval
            if deadline is not None:
                pause = max(min(pause, deadline - time.monotonic()), 0.0)
            time.sleep(pause)

    def cancel(self, run_id: str) -> RunRecord:
        """Cancel a queued or running run (its container is killed); return the record.

        Raises:
            NotFound: no run has this id.
        """
        # The daemon answers once the container is gone, which it waits for up to
        # the time /v1/info gives.
        timeout = self.read_timeout(self.info().cancel_wait_s + self.timeout)
        response = self.transport.request(
            "DELETE", f"/v1/runs/{segment(run_id)}", run_id=run_id, timeout=timeout
        )
        return parse(response, RunRecord)

    def list(
        self,
        status: RunStatus | str | None = None,
        *,
        tenant: str | None = None,
        limit: int = 50,
        offset: int = 0,
        since: datetime | None = None,
    ) -> RunPage:
        """Records newest first, optionally only those with ``status`` (an admin's token:
        every tenant's, or ``tenant``'s; an agent's: its own), or created at or after
        ``since`` (a naive time is local time, as Python reads it)."""
        params: dict[str, str | int] = {"limit": limit, "offset": offset}
        if status is not None:
            params["status"] = str(status)
        if tenant is not None:
            params["tenant"] = tenant
        if since is not None:
            params["since"] = since.astimezone(UTC).isoformat()
        return parse(self.transport.request("GET", "/v1/runs", params=params), RunPage)

    # -- artifacts and live events -----------------------------------------------------
    def artifacts(self, run_id: str) -> builtins.list[Artifact]:
        """The files the run left under ``outputs/`` (as its result lists them)."""
        response = self.transport.request(
            "GET", f"/v1/runs/{segment(run_id)}/artifacts", run_id=run_id
        )
        try:
            return _ARTIFACT_LIST.validate_json(response.content)
        except ValidationError as exc:
            raise invalid_response("the answer is not a list of artifacts", response) from exc

    def download_artifact(self, run_id: str, artifact: Artifact, directory: Path) -> Path:
        """Save ``artifact`` under ``directory`` (at its relative path); return the file.

        The name is checked like every name from outside, the file is written
        next to its target and renamed only once size and sha256 match.

        Raises:
            ServerError: size or hash differ from the artifact's record.
        """
        target = directory / check_relative_path(artifact.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        url = f"/v1/runs/{segment(run_id)}/artifacts/{urllib.parse.quote(artifact.path)}"
        return self.transport.download(
            url,
            target,
            what=artifact.path,
            size=artifact.size,
            sha256=artifact.sha256,
            run_id=run_id,
        )

    def events(self, run_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The run's Server-Sent Events as (name, data): ``status``, ``stdout``,
        ``stderr`` and, last, ``result`` (a `RunResult` as a dict)."""
        timeout = self.read_timeout(None)  # a quiet run sends nothing for a while
        url = f"/v1/runs/{segment(run_id)}/events"
        with self.transport.stream("GET", url, run_id=run_id, timeout=timeout) as response:
            yield from read_events(response)

    def run_streaming(
        self, request: RunRequest, on_output: Callable[[str, str], None]
    ) -> RunResult:
        """`run_request`, with ``on_output(stream, text)`` called as output arrives."""
        return self.follow(self.submit_request(request), on_output)

    def follow(self, run_id: str, on_output: Callable[[str, str], None]) -> RunResult:
        """Follow a submitted run to its end, calling ``on_output(stream, text)`` as output
        arrives; return its result.

        Raises:
            RunIncomplete: the run ended without a result (cancelled while queued, ...).
            NotFound: no run has this id.
            NoWorker: it is queued on a cluster with no live worker (it stays queued).
        """
        for name, data in self.events(run_id):
            if name in ("stdout", "stderr"):
                on_output(name, str(data.get("data", "")))
            elif name == "error":  # what an answer would have been (`no_worker`)
                raise _event_error(data, run_id)
            elif name == "result":
                try:
                    return RunResult.model_validate(data)
                except ValidationError as exc:
                    raise ServerError(
                        "the result event is not a valid RunResult",
                        code="invalid_response",
                        status_code=200,
                        run_id=run_id,
                    ) from exc
        return self.wait(run_id)  # the stream ended early: fall back to polling

    # -- plumbing -------------------------------------------------------------------
    def _post_run(
        self, request: RunRequest, *, wait: bool, timeout: httpx.Timeout | None = None
    ) -> httpx.Response:
        """``POST /v1/runs`` (see `ai_data_agent.client.requests.run_body`).

        Raises:
            RequestTooLarge, RequestRejected: over a cap of the daemon's; nothing was sent.
        """
        body = run_body(request, self.info(), wait=wait)
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        return self.transport.request("POST", "/v1/runs", **body, **extra)

    def check_sizes(self, request: RunRequest) -> None:
        """Check ``request`` against the daemon's caps (``GET /v1/info``) before sending it.

        Raises:
            RequestTooLarge: too many input files, one too large, or too many bytes in all.
            RequestRejected: the code is larger than the daemon takes.
        """
        check_sizes(request, self.info())

    def _wait_budget(self, request: RunRequest) -> float:
        """How long a waiting POST of ``request`` may stay open."""
        info = self.info()
        run_timeout = request.timeout_s or info.limits.timeout_s.default
        return run_timeout + info.install_timeout_s + WAIT_MARGIN_S + self.timeout


def _event_error(data: dict[str, Any], run_id: str) -> AiDataAgentError:
    """The error an SSE ``error`` event stands for, as the tree's class."""
    found = data.get("error")
    detail: dict[str, Any] = found if isinstance(found, dict) else {}
    status = data.get("status")
    return rebuild_error(
        str(detail.get("code") or "") or None,
        str(detail.get("message") or "the run's event stream ended with an error"),
        status=status if isinstance(status, int) else None,
        run_id=run_id,
    )
