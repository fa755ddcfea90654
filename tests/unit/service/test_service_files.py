"""Files in (JSON and multipart), artifacts out, and live events, over a fake executor."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import anyio
import httpx
import pytest
from service_fakes import (
    FakeExecutor,
    assert_error,
    make_settings,
    running_service,
    wait_for_status,
    wait_until,
)

from ai_data_agent.models import Artifact, RunResult
from ai_data_agent.settings import Settings

pytestmark = pytest.mark.anyio


def _parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_json_input_files_reach_the_executor(settings: Settings) -> None:
    async with running_service(settings) as svc:
        body = {"code": "x", "files": [{"path": "data/a.csv", "content_b64": "MSwy"}]}
        response = await svc.client.post("/v1/runs", json=body)
    assert response.status_code == 200, response.text
    assert "file data/a.csv: b'1,2'" in response.json()["stdout"]


async def test_multipart_upload_carries_the_request_and_files(settings: Settings) -> None:
    async with running_service(settings) as svc:
        response = await svc.client.post(
            "/v1/runs",
            data={"request": json.dumps({"code": "x"})},
            files=[("files", ("data/sales.csv", b"region,units\n", "text/csv"))],
        )
    assert response.status_code == 200, response.text
    assert "file data/sales.csv: b'region,units\\n'" in response.json()["stdout"]


@pytest.mark.parametrize(
    "path", ["../etc/passwd", "/etc/passwd", "a/../../b", "nul\x00byte", "x" * 300, "main.py"]
)
async def test_bad_input_paths_are_rejected_before_any_run(settings: Settings, path: str) -> None:
    async with running_service(settings) as svc:
        body = {"code": "x", "files": [{"path": path, "content_b64": ""}]}
        response = await svc.client.post("/v1/runs", json=body)
        assert_error(response, 422, "invalid_request")
        assert svc.executor.started == []


async def test_too_many_input_files_is_413(tmp_path: Any) -> None:
    settings = make_settings(tmp_path, max_input_files=2)
    async with running_service(settings) as svc:
        files = [{"path": f"f{i}", "content_b64": ""} for i in range(3)]
        response = await svc.client.post("/v1/runs", json={"code": "x", "files": files})
        assert_error(response, 413, "payload_too_large")
        assert svc.executor.started == []


async def test_artifacts_are_listed_and_served_with_type_and_length(settings: Settings) -> None:
    async with running_service(settings) as svc:
        result = RunResult.model_validate(
            (await svc.client.post("/v1/runs", json={"code": "artifact"})).json()
        )
        listed = [
            Artifact.model_validate(a)
            for a in (await svc.client.get(f"/v1/runs/{result.id}/artifacts")).json()
        ]
        response = await svc.client.get(f"/v1/runs/{result.id}/artifacts/outputs.csv")
        missing = await svc.client.get(f"/v1/runs/{result.id}/artifacts/nope.csv")
        traversal = await svc.client.get(f"/v1/runs/{result.id}/artifacts/..%2F..%2Fruns.sqlite3")
        unknown = await svc.client.get("/v1/runs/no-such-run/artifacts")

    assert listed == result.artifacts and [a.path for a in listed] == ["outputs.csv"]
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-length"] == "8"
    assert hashlib.sha256(response.content).hexdigest() == listed[0].sha256
    assert_error(missing, 404, "not_found")
    assert_error(traversal, 404, "not_found")
    assert_error(unknown, 404, "not_found")


async def test_artifacts_expire_with_their_record(tmp_path: Any) -> None:
    settings = make_settings(tmp_path, retention_max_runs=1)
    async with running_service(settings) as svc:
        first = (await svc.client.post("/v1/runs", json={"code": "artifact"})).json()["id"]
        await svc.client.post("/v1/runs", json={"code": "x"})
        folder = svc.daemon.dispatcher.artifacts_dir(first)
        assert folder.is_dir()
        svc.daemon.reaper.apply_retention()
        assert not folder.exists()


async def test_events_stream_status_output_and_result(settings: Settings) -> None:
    # httpx's ASGI transport hands over a streamed body only when it is complete, so
    # liveness itself is proven against the real daemon (integration); here, the order.
    executor = FakeExecutor()
    async with running_service(settings, executor) as svc:
        accepted = (await svc.client.post("/v1/runs", json={"code": "block", "wait": False})).json()
        run_id = accepted["id"]
        await wait_until(lambda: run_id in executor.started, what="the run to start")

        async def release_soon() -> None:
            await anyio.sleep(0.2)
            executor.release.set()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(release_soon)
            response = await svc.client.get(f"/v1/runs/{run_id}/events")

    assert response.headers["content-type"].startswith("text/event-stream")
    seen = _parse_sse(response.text)
    assert [name for name, _ in seen] == ["status", "status", "stdout", "result"]
    assert [data["status"] for name, data in seen if name == "status"] == ["queued", "running"]
    assert seen[2][1] == {"data": "live: block\n"}
    assert seen[3][1]["status"] == "succeeded" and seen[3][1]["id"] == run_id


async def test_events_of_a_finished_run_come_from_its_record(settings: Settings) -> None:
    async with running_service(settings) as svc:
        result = (await svc.client.post("/v1/runs", json={"code": "x"})).json()
        await wait_for_status(svc.client, result["id"], {"succeeded"})
        response = await svc.client.get(f"/v1/runs/{result['id']}/events")
        unknown = await svc.client.get("/v1/runs/nope/events")

    events = _parse_sse(response.text)
    assert [name for name, _ in events] == ["status", "stdout", "result"]
    assert events[0][1] == {"status": "succeeded"}
    assert events[1][1] == {"data": "ran: x\n"}
    assert events[2][1]["id"] == result["id"]
    assert_error(unknown, 404, "not_found")


async def test_events_need_the_token(settings: Settings) -> None:
    async with running_service(settings, token=None) as svc:
        response = await svc.client.get("/v1/runs/x/events")
        assert_error(response, 401, "unauthorized")


def test_base64_helper_round_trip() -> None:
    # The JSON body carries bytes as standard base64, as InputFile.from_bytes writes it.
    assert base64.b64decode("MSwy") == b"1,2"
    assert isinstance(httpx.Response(200).status_code, int)
