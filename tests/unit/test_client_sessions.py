"""`ai_data_agent.client.RemoteSession` against a stub daemon (httpx.MockTransport): no network.

Also: the client package stands on its own (no server settings, no executor).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from typing import Any

import httpx
import pytest
from client_stub import Recorder, error_response, session_json

from ai_data_agent.client import FileNotFound
from ai_data_agent.errors import NotFound, RequestRejected, RequestTooLarge, ServerError
from ai_data_agent.models import Artifact, InputFile
from ai_data_agent.session_models import CellResult, CellStatus


def test_the_client_imports_neither_the_settings_nor_the_executor() -> None:
    code = (
        "import sys, ai_data_agent.client\n"
        "print(sorted(m for m in sys.modules if m.startswith("
        "('ai_data_agent.settings', 'ai_data_agent.executor', 'pydantic_settings', 'docker'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.replace("'", '"')) == []


def test_the_sessions_are_read_as_the_routes_model(client_for: Any) -> None:
    page = {"items": [session_json("a"), session_json("b")]}
    recorder = Recorder(httpx.Response(200, json=page), httpx.Response(200, json=[session_json()]))
    client = client_for(recorder)
    assert [s.id for s in client.sessions()] == ["a", "b"]
    with pytest.raises(ServerError, match="not a valid SessionPage") as caught:
        client.sessions()  # a bare list is not the route's shape
    assert caught.value.code == "invalid_response"


def test_session_files_over_the_daemons_caps_are_refused_before_anything_is_sent(
    client_for: Any,
) -> None:
    recorder = Recorder(httpx.Response(200, json=session_json()))
    client = client_for(recorder)
    with pytest.raises(RequestTooLarge) as caught:
        client.session(files=[InputFile.from_bytes("big", b"x" * 1025)])
    assert caught.value.field == "files.big"
    assert recorder.requests == []

    session = client.session()
    with pytest.raises(RequestTooLarge) as caught:
        session.upload("data/big.csv", b"x" * 1025)
    assert caught.value.field == "files.data/big.csv"
    assert [r.method for r in recorder.requests] == ["POST"]  # the session, no upload


def test_a_session_upload_is_sent_as_octet_stream(client_for: Any) -> None:
    entry = {"path": "data/a.csv", "size": 4, "modified_at": "2025-01-01T00:00:00Z"}
    recorder = Recorder(httpx.Response(200, json=session_json()), httpx.Response(200, json=entry))
    session = client_for(recorder).session()
    session.upload("data/a.csv", b"a,b\n")
    assert recorder.last.method == "PUT" and recorder.last.url.path.endswith("/files/data/a.csv")
    assert recorder.last.headers["content-type"] == "application/octet-stream"  # the file cap
    assert recorder.last.content == b"a,b\n"


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "a//b.csv", "./a.csv", "a/"])
def test_unsafe_paths_are_refused_before_anything_is_sent_both_ways(
    client_for: Any, path: str
) -> None:
    recorder = Recorder(httpx.Response(200, json=session_json()))
    session = client_for(recorder).session()
    with pytest.raises(RequestRejected) as put:
        session.upload(path, b"x")
    with pytest.raises(RequestRejected) as get:
        session.download(path)
    assert str(get.value) == str(put.value)  # the same words both ways
    assert get.value.field == "path" and path[:3] in get.value.reason
    assert [r.method for r in recorder.requests] == ["POST"]  # the session, nothing else


def test_a_missing_file_is_file_not_found_naming_the_path(client_for: Any) -> None:
    missing = error_response(404, "file_not_found", "no file outputs/x.png in the session")
    recorder = Recorder(httpx.Response(200, json=session_json()), missing)
    session = client_for(recorder).session()
    with pytest.raises(FileNotFound) as caught:
        session.download("outputs/x.png")
    assert isinstance(caught.value, NotFound)
    assert caught.value.path == "outputs/x.png" and caught.value.status_code == 404
    assert "outputs/x.png" in str(caught.value)


def artifact(data: bytes, path: str = "chart.png") -> Artifact:
    digest = hashlib.sha256(data).hexdigest()
    return Artifact(path=path, size=len(data), sha256=digest, media_type="image/png")


def test_a_cells_artifact_downloads_as_the_file_under_outputs(client_for: Any) -> None:
    data = b"\x89PNG fake"
    recorder = Recorder(httpx.Response(200, json=session_json()), httpx.Response(200, content=data))
    session = client_for(recorder).session()
    chart = artifact(data, "plots/chart.png")
    assert chart.file_path == "outputs/plots/chart.png"
    assert session.download(chart) == data
    assert recorder.last.url.path == "/v1/sessions/s1/files/outputs/plots/chart.png"
    assert session.download(chart.file_path) == data  # the same file by its path


def test_an_artifact_that_arrives_changed_is_refused(client_for: Any) -> None:
    recorder = Recorder(
        httpx.Response(200, json=session_json()), httpx.Response(200, content=b"other bytes")
    )
    session = client_for(recorder).session()
    with pytest.raises(ServerError, match="different size or sha256") as caught:
        session.download(artifact(b"the bytes"))
    assert caught.value.code == "invalid_response"


def cell_json(**fields: Any) -> dict[str, Any]:
    base = {"session_id": "s1", "execution_count": 3, "generation": 1, "state": "preserved"}
    return CellResult(**{**base, "status": CellStatus.SUCCEEDED, **fields}).model_dump(mode="json")


def test_a_followed_cell_and_an_interrupt_are_read_as_the_routes_models(
    client_for: Any,
) -> None:
    result = json.dumps(cell_json(stdout="hi\n"))
    events = f'event: stdout\ndata: {{"data": "hi\\n"}}\n\nevent: result\ndata: {result}\n\n'
    recorder = Recorder(
        httpx.Response(200, json=session_json()),
        httpx.Response(202, json={"session_id": "s1", "execution_count": 3, "status": "running"}),
        httpx.Response(200, text=events, headers={"Content-Type": "text/event-stream"}),
        httpx.Response(200, json={"interrupted": False}),
        httpx.Response(202, json={"session_id": "s1", "status": "running"}),
    )
    session = client_for(recorder).session()
    seen: list[tuple[str, dict[str, Any]]] = []
    cell = session.run("print('hi')", on_output=lambda kind, data: seen.append((kind, data)))
    assert cell.execution_count == 3 and seen == [("stdout", {"data": "hi\n"})]
    assert recorder.requests[2].url.path == "/v1/sessions/s1/cells/3/events"
    assert session.interrupt() is False
    with pytest.raises(ServerError, match="not a valid CellAccepted"):
        session.run("1", on_output=lambda kind, data: None)  # no execution_count
