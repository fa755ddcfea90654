"""One exception tree on both sides: what the daemon raises, the client raises again.

The app runs in-process, on an event loop in another thread; the synchronous
`ai_data_agent.client.Client` talks to it through a transport that forwards
each request there, so both sides are the real code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import start_blocking_portal
from fastapi import FastAPI
from service_fakes import TOKEN, FakeExecutor, make_settings

from ai_data_agent import wire_errors
from ai_data_agent.client import Client, error_from_response
from ai_data_agent.errors import (
    AiDataAgentError,
    CheckpointFailed,
    ConfigurationError,
    DatasetInUse,
    DockerUnavailable,
    ExecutorError,
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
    SessionGone,
    SessionLimit,
    Unauthorized,
)
from ai_data_agent.limits import default_limits, resolve_run
from ai_data_agent.models import RunRequest
from ai_data_agent.service import create_app
from ai_data_agent.service.daemon import Daemon
from ai_data_agent.service.node import RUN_RETRY_AFTER_S
from ai_data_agent.settings import Settings

BASE = "http://daemon.test"
# What each class a client raises again is on the wire.
WIRE = {
    RequestRejected: (400, "invalid_request"),
    RequestTooLarge: (413, "payload_too_large"),
    InstallFailed: (422, "install_failed"),
    Unauthorized: (401, "unauthorized"),
    Forbidden: (403, "forbidden"),
    NotFound: (404, "not_found"),
    FileNotFound: (404, "file_not_found"),
    QueueFull: (429, "queue_full"),
    QuotaExceeded: (429, "quota_exceeded"),
    DatasetInUse: (409, "dataset_in_use"),
    SessionBusy: (409, "session_busy"),
    SessionGone: (410, "session_gone"),
    SessionLimit: (429, "session_limit"),
    CheckpointFailed: (422, "checkpoint_failed"),
    NotReady: (503, "not_ready"),
    NoWorker: (503, "no_worker"),
    ServerError: (500, "internal"),
}


@dataclass
class Sides:
    client: Client  # the package's client, its requests forwarded to the app
    executor: FakeExecutor
    daemon: Daemon
    raw: Callable[..., httpx.Response]  # raw(method, url, **kwargs): plain HTTP to the app


@contextmanager
def both_sides(
    settings: Settings,
    *,
    token: str | None = TOKEN,
    prepare: Callable[[FastAPI], None] | None = None,
) -> Iterator[Sides]:
    """The app over a fake executor, its lifespan on a loop in another thread, and a
    `Client` whose requests reach it."""
    executor = FakeExecutor()
    app = create_app(settings, executor)
    if prepare is not None:
        prepare(app)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        with (
            start_blocking_portal("asyncio") as portal,
            portal.wrap_async_context_manager(app.router.lifespan_context(app)),
        ):
            http = httpx.AsyncClient(transport=transport, base_url=BASE, headers=headers)

            def raw(method: str, url: str, **kwargs: Any) -> httpx.Response:
                return portal.call(partial(http.request, method, url, **kwargs))

            def forward(request: httpx.Request) -> httpx.Response:
                answer = raw(
                    request.method,
                    str(request.url),
                    headers=request.headers,
                    content=request.content,
                )
                return httpx.Response(
                    answer.status_code, headers=answer.headers, content=answer.content
                )

            try:
                with Client(BASE, token, transport=httpx.MockTransport(forward)) as client:
                    yield Sides(client, executor, app.state.daemon, raw)
            finally:
                portal.call(http.aclose)
    finally:
        executor.release.set()


def raising_route(app: FastAPI) -> None:
    """``GET /v1/raise/{name}`` raises an instance of the tree's class ``name``."""
    samples: dict[str, AiDataAgentError] = {
        "RequestRejected": RequestRejected("timeout_s", "900 is above the server cap 600"),
        "RequestTooLarge": RequestTooLarge("files", "3 files, at most 2"),
        "InstallFailed": InstallFailed("no matching distribution for nope"),
        "Unauthorized": Unauthorized("wrong bearer token"),
        "NotFound": NotFound("no run with id 'x'", run_id="x"),
        "Forbidden": Forbidden("tenant 'a' is not an admin"),
        "FileNotFound": FileNotFound("no file outputs/x.png in the session", path="outputs/x.png"),
        "QueueFull": QueueFull("1 running and 1 queued", retry_after=2.5),
        "QuotaExceeded": QuotaExceeded(
            "at its quota queued_runs = 2", quota="queued_runs", limit=2, used=2, retry_after=2.5
        ),
        "DatasetInUse": DatasetInUse("dataset sales version 2 is mounted by a live session"),
        "SessionBusy": SessionBusy("session s1 is busy", session_id="s1"),
        "SessionGone": SessionGone("session s1 is closed", session_id="s1"),
        "SessionLimit": SessionLimit("4 sessions live", retry_after=2.5),
        "CheckpointFailed": CheckpointFailed("the serialiser ran out of time", session_id="s1"),
        "NotReady": NotReady("the daemon is shutting down"),
        "NoWorker": NoWorker("no live worker: run r1 stays queued", run_id="r1"),
        "ServerError": ServerError("run x has no terminal record"),
        "ExecutorError": ExecutorError("cannot create the container", run_id="x", step="create"),
        "AiDataAgentError": AiDataAgentError("secret-detail"),
    }

    async def raise_it(name: str) -> None:
        raise samples[name]

    app.add_api_route("/v1/raise/{name}", raise_it, methods=["GET"])


def test_the_tree_is_the_wire_table() -> None:
    assert {cls: (cls.http_status, cls.default_code) for cls in wire_errors.HTTP_ERRORS} == WIRE
    for cls, (status, code) in WIRE.items():
        assert wire_errors.error_class(status, code) is cls
    # A body that is not ours (a proxy's page): by its status alone.
    by_status = {400: RequestRejected, 401: Unauthorized, 403: Forbidden, 404: NotFound}
    by_status |= {409: SessionBusy}
    by_status |= {410: SessionGone, 413: RequestTooLarge, 422: RequestRejected, 429: QueueFull}
    by_status |= {503: NotReady, 500: ServerError, 502: ServerError}
    assert {status: wire_errors.error_class(status, None) for status in by_status} == by_status
    assert wire_errors.error_class(405, "method_not_allowed") is ServerError
    # Host failures outside a run are answered not_ready, which a client raises as NotReady.
    for cls in (ExecutorError, DockerUnavailable, ConfigurationError):
        assert (cls.http_status, cls.default_code) == (503, "not_ready")


@pytest.mark.parametrize("cls", list(WIRE), ids=lambda cls: cls.__name__)
def test_each_class_the_daemon_raises_is_the_class_the_client_raises(
    tmp_path: Path, cls: type[AiDataAgentError]
) -> None:
    status, code = WIRE[cls]
    with both_sides(make_settings(tmp_path), prepare=raising_route) as sides:
        response = sides.raw("GET", f"/v1/raise/{cls.__name__}")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    again = error_from_response(response)
    assert type(again) is cls
    assert (again.status_code, again.code) == (status, code)
    if cls is Unauthorized:
        assert response.headers["www-authenticate"] == 'Bearer realm="ai-data-agent"'
    if isinstance(again, QueueFull | SessionLimit):
        assert response.headers["retry-after"] == "3"  # whole seconds, rounded up
        assert again.retry_after == 3
    if isinstance(again, RequestRejected):
        assert again.reason == response.json()["error"]["message"]
    if isinstance(again, QuotaExceeded):
        assert (again.quota, again.limit, again.used) == ("queued_runs", 2, 2)
    if cls is NoWorker:
        assert response.headers["location"] == "/v1/runs/r1"  # where the queued run is


def test_an_error_without_an_http_status_is_500_without_detail(tmp_path: Path) -> None:
    with both_sides(make_settings(tmp_path), prepare=raising_route) as sides:
        response = sides.raw("GET", "/v1/raise/AiDataAgentError")
    assert response.status_code == 500
    assert response.json()["error"] == {
        "code": "internal",
        "message": "internal server error; see the daemon's log",
    }
    assert type(error_from_response(response)) is ServerError


def test_a_host_failure_outside_a_run_is_503_not_ready(tmp_path: Path) -> None:
    with both_sides(make_settings(tmp_path), prepare=raising_route) as sides:
        response = sides.raw("GET", "/v1/raise/ExecutorError")
    assert response.status_code == 503
    assert response.json()["error"] == {
        "code": "not_ready",
        "message": "cannot create the container (run=x, step=create)",
    }
    assert type(error_from_response(response)) is NotReady


def test_queue_full_from_the_dispatcher_reaches_the_client_with_retry_after(
    tmp_path: Path,
) -> None:
    with both_sides(make_settings(tmp_path)) as sides:
        sides.client.submit("block")
        sides.client.submit("queued")
        request = RunRequest(code="x")
        with pytest.raises(QueueFull) as raised:
            sides.daemon.dispatcher.submit(request, resolve_run(request, sides.daemon.settings))
        with pytest.raises(QueueFull) as answered:
            sides.client.submit("x")
    assert raised.value.retry_after == RUN_RETRY_AFTER_S
    assert answered.value.retry_after == math.ceil(RUN_RETRY_AFTER_S)
    assert answered.value.message == raised.value.message
    assert (answered.value.status_code, raised.value.status_code) == (429, None)


def test_not_ready_from_the_dispatcher_reaches_the_client(tmp_path: Path) -> None:
    with both_sides(make_settings(tmp_path)) as sides:
        sides.daemon.begin_shutdown()
        with pytest.raises(NotReady, match="shutting down"):
            sides.daemon.dispatcher.submit(
                RunRequest(code="x"), default_limits(sides.daemon.settings)
            )
        with pytest.raises(NotReady, match="shutting down") as info:
            sides.client.submit("x")
    assert info.value.status_code == 503


def test_a_limit_above_its_cap_is_request_rejected_on_both_sides(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    request = RunRequest(code="x", timeout_s=10_000)
    with pytest.raises(RequestRejected) as local:
        resolve_run(request, settings)
    with both_sides(settings) as sides, pytest.raises(RequestRejected) as remote:
        sides.client.submit_request(request)
    assert sides.executor.started == []
    assert local.value.field == "timeout_s"
    assert remote.value.reason == str(local.value)
    assert remote.value.status_code == 400


def test_too_many_files_is_request_too_large_on_both_sides(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_input_files=1)
    files = [{"path": "a", "content_b64": ""}, {"path": "b", "content_b64": ""}]
    request = RunRequest.model_validate({"code": "x", "files": files})
    with pytest.raises(RequestTooLarge) as local:
        resolve_run(request, settings)
    with both_sides(settings) as sides, pytest.raises(RequestTooLarge) as remote:
        sides.client.submit_request(request)
    # The client knows the cap from /v1/info: the same refusal, before anything is sent.
    assert (remote.value.field, remote.value.reason) == (local.value.field, local.value.reason)
    assert remote.value.status_code is None
    assert sides.executor.started == []


def test_an_unknown_run_is_not_found_with_its_id(tmp_path: Path) -> None:
    with both_sides(make_settings(tmp_path)) as sides, pytest.raises(NotFound) as info:
        sides.client.get("no-such-run")
    assert info.value.run_id == "no-such-run" and info.value.status_code == 404


def test_a_wrong_token_is_unauthorized(tmp_path: Path) -> None:
    with (
        both_sides(make_settings(tmp_path), token="wrong") as sides,
        pytest.raises(Unauthorized) as info,
    ):
        sides.client.submit("x")
    assert info.value.status_code == 401 and sides.executor.started == []


def test_a_body_that_does_not_validate_is_422_in_our_words(tmp_path: Path) -> None:
    bad = {"code": "x", "requirements": ["-r other.txt"], "env": {"LD_PRELOAD": "x"}}
    with both_sides(make_settings(tmp_path)) as sides:
        response = sides.raw("POST", "/v1/runs", json=bad)
        single = sides.raw("POST", "/v1/runs", json={"code": "x", "env": {"PATH": "x"}})
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert message.startswith("body.requirements.0: '-r other.txt': pip options are not accepted")
    assert "; body.env: env name 'LD_PRELOAD' is reserved for the sandbox" in message
    assert "Value error" not in message
    assert single.json()["error"]["message"] == (
        "body.env: env name 'PATH' is reserved for the sandbox"
    )
    again = error_from_response(single)
    assert isinstance(again, RequestRejected) and again.status_code == 422
