"""`ai_data_agent.client.Client` against a stub daemon (httpx.MockTransport): no network."""

from __future__ import annotations

import email.parser
import email.policy
import inspect
import json
import socket
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from client_stub import BASE, INFO, Recorder, error_response

from ai_data_agent.client import Client
from ai_data_agent.client.requests import RunOptions
from ai_data_agent.client.runs import WAIT_MARGIN_S
from ai_data_agent.errors import (
    AiDataAgentError,
    NotFound,
    NotReady,
    QueueFull,
    RequestRejected,
    RequestTooLarge,
    RunIncomplete,
    ServerError,
    ServerUnreachable,
    Unauthorized,
)
from ai_data_agent.models import InputFile, RunRequest, RunResult, RunStatus


def result_json(
    run_id: str = "r1", status: str = "succeeded", stdout: str = "hi\n"
) -> dict[str, Any]:
    return RunResult(id=run_id, status=RunStatus(status), exit_code=0, stdout=stdout).model_dump(
        mode="json"
    )


def record_json(
    run_id: str = "r1", status: str = "succeeded", *, result: bool = True, error: str | None = None
) -> dict[str, Any]:
    return {
        "id": run_id,
        "status": status,
        "created_at": "2025-01-01T00:00:00Z",
        "request": {"code": "print('hi')"},
        "result": result_json(run_id, status) if result else None,
        "error": error,
    }


# -- happy paths -------------------------------------------------------------------


def test_run_posts_a_submission_built_by_the_models(client_for: Any) -> None:
    recorder = Recorder(httpx.Response(200, json=result_json()))
    client = client_for(recorder)

    result = client.run(
        "print('hi')",
        requirements=["six"],
        timeout_s=30,
        memory_mb=256,
        cpus=0.5,
        env={"A": "1"},
        install_mode="per_run",
    )

    assert result.status == RunStatus.SUCCEEDED and result.stdout == "hi\n"
    request = recorder.last
    assert (request.method, request.url.path) == ("POST", "/v1/runs")
    assert request.headers["authorization"] == "Bearer s3cret"
    # Defaults stay out (network, wait): the daemon's own defaults apply.
    assert json.loads(request.content) == {
        "code": "print('hi')",
        "requirements": ["six"],
        "timeout_s": 30,
        "memory_mb": 256,
        "cpus": 0.5,
        "env": {"A": "1"},
        "install_mode": "per_run",
    }
    # The line stays open for the run's timeout plus the daemon's install timeout.
    expected = 30 + INFO.install_timeout_s + WAIT_MARGIN_S + 5.0
    assert request.extensions["timeout"]["read"] == expected
    assert request.extensions["timeout"]["connect"] == 5.0


def test_run_and_submit_take_every_field_of_a_run_request() -> None:
    assert {"code", *RunOptions.__annotations__} == set(RunRequest.model_fields)
    for method in (Client.run, Client.submit):
        options = inspect.signature(method).parameters["options"]
        assert options.kind is inspect.Parameter.VAR_KEYWORD, method.__name__


def multipart(request: httpx.Request) -> list[tuple[str, str | None, bytes]]:
    """The (name, filename, bytes) of each part of a multipart request."""
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.content)
    return [
        (
            part.get_param("name", header="content-disposition"),
            part.get_filename(),
            part.get_payload(decode=True),
        )
        for part in message.iter_parts()
    ]


def test_input_files_are_sent_as_multipart_parts_of_their_own_bytes(client_for: Any) -> None:
    recorder = Recorder(httpx.Response(200, json=result_json()))
    data = bytes(range(256)) * 3
    files = [InputFile.from_bytes("data/a.csv", b"x,y\n1,2\n"), InputFile.from_bytes("b", data)]
    client_for(recorder).run("print(1)", files=files)
    parts = multipart(recorder.last)
    assert [(name, filename) for name, filename, _ in parts] == [
        ("request", None),
        ("files", "data/a.csv"),
        ("files", "b"),
    ]
    assert json.loads(parts[0][2]) == {"code": "print(1)"}  # no base64 copy of the files
    assert [content for _, _, content in parts[1:]] == [b"x,y\n1,2\n", data]


def test_a_path_that_multipart_would_change_travels_in_the_json(client_for: Any) -> None:
    recorder = Recorder(httpx.Response(200, json=result_json()))
    files = [InputFile.from_bytes('say "hi".txt', b"hi"), InputFile.from_bytes("plain", b"p")]
    client_for(recorder).run("print(1)", files=files)
    parts = multipart(recorder.last)
    assert json.loads(parts[0][2])["files"] == [{"path": 'say "hi".txt', "content_b64": "aGk="}]
    assert [(name, filename) for name, filename, _ in parts[1:]] == [("files", "plain")]


@pytest.mark.parametrize(
    ("files", "field"),
    [
        ([InputFile.from_bytes(f"f{i}", b"x") for i in range(4)], "files"),  # 3 at most
        ([InputFile.from_bytes("big", b"x" * 1025)], "files.big"),  # 1 KiB each
        ([InputFile.from_bytes(f"f{i}", b"x" * 1000) for i in range(3)], "files"),  # 2 KiB in all
    ],
    ids=["count", "one-file", "total"],
)
def test_files_over_the_daemons_caps_are_refused_before_anything_is_sent(
    client_for: Any, files: list[InputFile], field: str
) -> None:
    recorder = Recorder(httpx.Response(200, json=result_json()))
    client = client_for(recorder)
    with pytest.raises(RequestTooLarge) as caught:
        client.run("print(1)", files=files)
    assert caught.value.field == field and caught.value.status_code is None
    with pytest.raises(RequestTooLarge):
        client.submit("print(1)", files=files)
    assert recorder.requests == []  # only GET /v1/info went out
    assert recorder.info_requests == 1


def test_code_over_the_daemons_cap_is_refused_before_anything_is_sent(client_for: Any) -> None:
    recorder = Recorder(httpx.Response(200, json=result_json()))
    with pytest.raises(RequestRejected) as caught:
        client_for(recorder).run("#" * (INFO.max_code_bytes + 1))
    assert caught.value.field == "code" and not isinstance(caught.value, RequestTooLarge)
    assert recorder.requests == []


def test_run_request_sends_every_field_set(client_for: Any) -> None:
    recorder = Recorder(httpx.Response(200, json=result_json()))
    request = RunRequest(code="print(1)", timeout_s=12, env={"A": "b"})
    client_for(recorder).run_request(request, wait_timeout_s=99)
    assert json.loads(recorder.last.content) == {
        "code": "print(1)",
        "timeout_s": 12,
        "env": {"A": "b"},
    }
    assert recorder.last.extensions["timeout"]["read"] == 99
    assert recorder.info_requests == 1  # for the caps, not for the wait budget


def test_submit_request_does_not_wait(client_for: Any) -> None:
    recorder = Recorder(httpx.Response(202, json={"id": "r8", "status": "queued"}))
    request = RunRequest(code="print(1)", install_mode="cache")
    assert client_for(recorder).submit_request(request) == "r8"
    assert json.loads(recorder.last.content) == {
        "code": "print(1)",
        "install_mode": "cache",
        "wait": False,
    }


def test_unset_limits_are_left_to_the_server_and_the_wait_uses_its_default(
    client_for: Any,
) -> None:
    recorder = Recorder(httpx.Response(200, json=result_json()))
    client_for(recorder).run("print(1)")
    assert json.loads(recorder.last.content) == {"code": "print(1)"}
    default = INFO.limits.timeout_s.default
    expected = default + INFO.install_timeout_s + WAIT_MARGIN_S + 5.0
    assert recorder.last.extensions["timeout"]["read"] == expected


def test_server_info_is_fetched_once_and_only_when_needed(client_for: Any) -> None:
    recorder = Recorder(
        httpx.Response(200, json=record_json("r1", "running", result=False)),
        httpx.Response(200, json=result_json()),
    )
    client = client_for(recorder)
    client.get("r1")
    assert recorder.info_requests == 0  # lazily
    client.run("print(1)")
    client.run("print(2)", timeout_s=3)
    assert client.info() == INFO
    assert recorder.info_requests == 1
    assert recorder.last.extensions["timeout"]["read"] == 3 + 111 + WAIT_MARGIN_S + 5.0


def test_an_info_call_that_fails_raises_from_the_tree(client_for: Any) -> None:
    recorder = Recorder(
        httpx.Response(200, json=result_json()),
        info=error_response(401, "unauthorized", "wrong bearer token"),
    )
    with pytest.raises(Unauthorized):
        client_for(recorder).run("print(1)")
    assert recorder.requests == []  # nothing was submitted


def test_info_of_the_wrong_shape_is_a_server_error(client_for: Any) -> None:
    recorder = Recorder(httpx.Response(200), info=httpx.Response(200, json={"version": "1"}))
    with pytest.raises(ServerError, match="not a valid ServerInfo") as info:
        client_for(recorder).info()
    assert info.value.code == "invalid_response"


@pytest.mark.parametrize(
    ("kwargs", "field", "reason"),
    [
        ({"requirements": ["-r x.txt"]}, "requirements.0", "pip options are not accepted"),
        ({"env": {"PATH": "/x"}}, "env", "reserved for the sandbox"),
        ({"timeout_s": -1}, "timeout_s", "greater than 0"),
    ],
)
def test_a_request_that_does_not_validate_is_rejected_before_sending(
    client_for: Any, kwargs: dict[str, Any], field: str, reason: str
) -> None:
    recorder = Recorder(httpx.Response(200, json=result_json()))
    with pytest.raises(RequestRejected) as info:
        client_for(recorder).run("print(1)", **kwargs)
    assert info.value.field == field and reason in info.value.reason
    assert info.value.status_code is None and info.value.code == "invalid_request"
    assert "Value error" not in str(info.value)
    assert recorder.requests == [] and recorder.info_requests == 0


def test_run_falls_back_to_polling_when_the_server_does_not_wait(client_for: Any) -> None:
    recorder = Recorder(
        httpx.Response(
            202, json={"id": "r9", "status": "queued"}, headers={"Location": "/v1/runs/r9"}
        ),
        httpx.Response(200, json=record_json("r9", "running", result=False)),
        httpx.Response(200, json=record_json("r9")),
    )
    client = client_for(recorder)
    assert client.run("print(1)").id == "r9"
    assert [r.url.path for r in recorder.requests] == ["/v1/runs", "/v1/runs/r9", "/v1/runs/r9"]


def test_submit_returns_the_id_at_once(client_for: Any) -> None:
    recorder = Recorder(
        httpx.Response(
            202, json={"id": "r2", "status": "queued"}, headers={"Location": "/v1/runs/r2"}
        )
    )
    assert client_for(recorder).submit("print(1)", requirements=["six"]) == "r2"
    assert json.loads(recorder.last.content)["wait"] is False


def test_get_and_cancel(client_for: Any) -> None:
    recorder = Recorder(
        httpx.Response(200, json=record_json("r3", "running", result=False)),
        httpx.Response(200, json=record_json("r3", "cancelled", result=False, error="cancelled")),
    )
    client = client_for(recorder)
    assert client.get("r3").status == "running"
    record = client.cancel("r3")
    assert record.status == RunStatus.CANCELLED and record.error == "cancelled"
    assert [(r.method, r.url.path) for r in recorder.requests] == [
        ("GET", "/v1/runs/r3"),
        ("DELETE", "/v1/runs/r3"),
    ]
    # A cancel waits for the container to go: as long as the daemon says, and then some.
    assert recorder.requests[0].extensions["timeout"]["read"] == 5.0
    assert recorder.requests[1].extensions["timeout"]["read"] == INFO.cancel_wait_s + 5.0


def test_run_ids_cannot_change_the_route(client_for: Any) -> None:
    recorder = Recorder(error_response(404, "not_found", "no run"))
    client = client_for(recorder)
    with pytest.raises(NotFound) as info:
        client.get("../healthz?x=1")
    assert info.value.run_id == "../healthz?x=1"
    assert recorder.last.url.raw_path == b"/v1/runs/..%2Fhealthz%3Fx%3D1"
    with pytest.raises(ValueError, match="not an id"):
        client.get("..")


def test_list_passes_filter_and_pagination(client_for: Any) -> None:
    page = {"items": [record_json("a"), record_json("b")], "total": 7, "limit": 2, "offset": 4}
    recorder = Recorder(httpx.Response(200, json=page))
    result = client_for(recorder).list(RunStatus.SUCCEEDED, limit=2, offset=4)
    assert [r.id for r in result.items] == ["a", "b"] and result.total == 7
    assert dict(recorder.last.url.params) == {"status": "succeeded", "limit": "2", "offset": "4"}


def test_list_without_a_filter_sends_none(client_for: Any) -> None:
    recorder = Recorder(
        httpx.Response(200, json={"items": [], "total": 0, "limit": 50, "offset": 0})
    )
    client_for(recorder).list()
    assert "status" not in recorder.last.url.params and "since" not in recorder.last.url.params


def test_list_sends_since_as_an_aware_time(client_for: Any) -> None:
    recorder = Recorder(
        httpx.Response(200, json={"items": [], "total": 0, "limit": 50, "offset": 0})
    )
    since = datetime(2025, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    client_for(recorder).list(since=since)
    assert recorder.last.url.params["since"] == "2025-03-01T10:30:00+00:00"


def test_wait_polls_until_terminal(client_for: Any) -> None:
    recorder = Recorder(
        httpx.Response(200, json=record_json("r4", "queued", result=False)),
        httpx.Response(200, json=record_json("r4", "running", result=False)),
        httpx.Response(200, json=record_json("r4", "failed")),
    )
    result = client_for(recorder).wait("r4", poll_interval=0.01, timeout=5)
    assert result.status == RunStatus.FAILED
    assert len(recorder.requests) == 3


def test_wait_raises_on_a_terminal_record_without_result(client_for: Any) -> None:
    recorder = Recorder(
        httpx.Response(
            200, json=record_json("r5", "interrupted", result=False, error="daemon restarted")
        )
    )
    with pytest.raises(RunIncomplete, match="daemon restarted") as info:
        client_for(recorder).wait("r5", poll_interval=0.01)
    assert info.value.code == "interrupted" and info.value.status_code is None
    assert info.value.record.id == "r5"


def test_wait_gives_up_at_its_timeout(client_for: Any) -> None:
    recorder = Recorder(httpx.Response(200, json=record_json("r6", "running", result=False)))
    with pytest.raises(RunIncomplete, match="still running") as info:
        client_for(recorder).wait("r6", poll_interval=0.01, timeout=0.05)
    assert info.value.code == "wait_timeout" and info.value.record.status == "running"


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "invalid_request", RequestRejected),
        (422, "invalid_request", RequestRejected),
        (401, "unauthorized", Unauthorized),
        (404, "not_found", NotFound),
        (413, "payload_too_large", RequestTooLarge),
        (429, "queue_full", QueueFull),
        (503, "not_ready", NotReady),
        (500, "internal", ServerError),
    ],
)
def test_each_error_code_maps_to_its_exception(
    client_for: Any, status: int, code: str, cls: type[AiDataAgentError]
) -> None:
    recorder = Recorder(error_response(status, code, f"because {code}"))
    with pytest.raises(cls) as info:
        client_for(recorder).submit("print(1)")
    err = info.value
    assert type(err) is cls and isinstance(err, AiDataAgentError)
    assert (err.status_code, err.code, err.message) == (status, code, f"because {code}")
    assert str(err) == f"HTTP {status} {code}: because {code}"


def test_an_answer_is_classed_by_its_code_before_its_status(client_for: Any) -> None:
    recorder = Recorder(error_response(400, "payload_too_large", "too many files"))
    with pytest.raises(RequestTooLarge) as info:
        client_for(recorder).submit("print(1)")
    assert info.value.field is None and info.value.reason == "too many files"


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0.5", 0.5), (None, None), ("soon", None), ("nan", None)],
)
def test_queue_full_carries_retry_after(
    client_for: Any, header: str | None, expected: float | None
) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    recorder = Recorder(error_response(429, "queue_full", "queue is full", **headers))
    with pytest.raises(QueueFull) as info:
        client_for(recorder).run("print(1)")
    assert info.value.retry_after == expected


def test_retry_after_as_an_http_date(client_for: Any) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    recorder = Recorder(error_response(429, "queue_full", "full", **{"Retry-After": when}))
    with pytest.raises(QueueFull) as info:
        client_for(recorder).submit("print(1)")
    assert info.value.retry_after is not None and 20 < info.value.retry_after <= 30


def test_a_body_that_is_not_an_error_body_is_never_echoed(client_for: Any) -> None:
    traceback = 'Traceback (most recent call last):\n  File "/app/x.py", line 1\nKeyError: secret'
    recorder = Recorder(httpx.Response(500, text=traceback))
    with pytest.raises(ServerError) as info:
        client_for(recorder).get("r1")
    assert info.value.message == "500 Internal Server Error"
    assert "Traceback" not in str(info.value) and "secret" not in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        {"detail": "Not Found"},  # a framework default
        {"error": {"code": 404, "message": "x"}},  # wrong types
        {"error": "not_found"},
    ],
)
def test_malformed_error_bodies_fall_back_to_the_status_line(client_for: Any, body: Any) -> None:
    recorder = Recorder(httpx.Response(404, json=body))
    with pytest.raises(NotFound) as info:
        client_for(recorder).get("r1")
    assert (info.value.code, info.value.message) == ("not_found", "404 Not Found")


def test_unexpected_statuses_are_server_errors(client_for: Any) -> None:
    recorder = Recorder(
        httpx.Response(502, text="<html>bad gateway</html>"),
        error_response(405, "method_not_allowed", "Method Not Allowed"),
    )
    client = client_for(recorder)
    with pytest.raises(ServerError) as info:
        client.get("r1")
    assert (info.value.status_code, info.value.code) == (502, "internal")
    with pytest.raises(ServerError) as info:
        client.get("r1")
    assert (info.value.status_code, info.value.code) == (405, "method_not_allowed")


def test_a_success_body_of_the_wrong_shape_is_a_server_error(client_for: Any) -> None:
    recorder = Recorder(httpx.Response(200, json={"status": "succeeded"}))
    with pytest.raises(ServerError, match="not a valid RunResult") as info:
        client_for(recorder).run("print(1)")
    assert info.value.code == "invalid_response"


def test_long_server_messages_are_capped(client_for: Any) -> None:
    recorder = Recorder(error_response(400, "invalid_request", "x" * 10_000))
    with pytest.raises(RequestRejected) as info:
        client_for(recorder).submit("print(1)")
    assert len(info.value.message) == 2000


# -- transport ---------------------------------------------------------------------


def test_unreachable_server() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        Client(f"http://127.0.0.1:{port}", timeout=2.0) as client,
        pytest.raises(ServerUnreachable) as info,
    ):
        client.run("print(1)")
    assert info.value.status_code is None and info.value.code == "unreachable"
    assert f"127.0.0.1:{port}" in info.value.message
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_a_read_timeout_is_reported_as_no_answer(client_for: Any) -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(ServerUnreachable, match=r"no answer from http://daemon\.test in time"):
        client_for(Recorder(hang)).run("print(1)", wait_timeout_s=1)


def test_no_token_sends_no_authorization_header() -> None:
    recorder = Recorder(httpx.Response(200, json=record_json()))
    with Client(BASE, transport=httpx.MockTransport(recorder)) as client:
        client.get("r1")
    assert "authorization" not in recorder.last.headers


def test_close_is_idempotent() -> None:
    client = Client(BASE, transport=httpx.MockTransport(Recorder(httpx.Response(200))))
    with client:
        pass
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.get("r1")
