"""What a newcomer trips over at the API's edge: the OpenAPI document, /docs without a
network, strict types, paths taken as they are, multipart parts and body caps."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate
from service_fakes import assert_error, make_settings, running_service

from ai_data_agent.api_models import ActiveStatus, RunRecord
from ai_data_agent.models import RunStatus
from ai_data_agent.service.body_limit import MULTIPART_PART_OVERHEAD
from ai_data_agent.settings import Settings

pytestmark = pytest.mark.anyio
MiB = 1024 * 1024
ONE_FILE = ("files", ("ok.csv", b"1\n", "text/csv"))  # with a file part, httpx sends multipart


async def _document(settings: Settings) -> dict[str, Any]:
    async with running_service(settings, token=None) as svc:
        response = await svc.client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


# -- the OpenAPI document ---------------------------------------------------------------


async def test_the_openapi_document_is_valid_and_every_reference_resolves(
    settings: Settings,
) -> None:
    document = await _document(settings)
    validate(document)  # openapi-spec-validator: the OpenAPI 3.1 schema
    # The validator does not follow references inside schemas; generators do.
    missing = []
    for ref in sorted(set(_refs(document))):
        try:
            _resolve(document, ref)
        except KeyError:
            missing.append(ref)
    assert missing == []


async def test_the_run_body_is_described_with_wait_and_both_encodings(settings: Settings) -> None:
    document = await _document(settings)
    body = document["paths"]["/v1/runs"]["post"]["requestBody"]["content"]
    submission = _resolve(document, body["application/json"]["schema"]["$ref"])
    assert {"code", "files", "wait"} <= set(submission["properties"])
    assert "202" in submission["properties"]["wait"]["description"]
    upload = body["multipart/form-data"]["schema"]
    assert set(upload["properties"]) == {"request", "files"}
    assert upload["additionalProperties"] is False  # other parts are refused, not dropped


async def test_operation_ids_are_unique_and_readable(settings: Settings) -> None:
    document = await _document(settings)
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert {"submit_run", "get_run", "cancel_run", "create_session", "run_cell"} <= set(ids)
    assert all(re.fullmatch(r"[a-z_]+", name) for name in ids), ids


# -- /docs, served by the daemon --------------------------------------------------------


async def test_docs_load_their_assets_from_the_daemon_not_a_cdn(settings: Settings) -> None:
    async with running_service(settings, token=None) as svc:
        page = await svc.client.get("/docs")
        assert page.status_code == 200 and "SwaggerUIBundle" in page.text
        urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assets = {url: await svc.client.get(url) for url in urls}
        redoc = await svc.client.get("/redoc")
    assert len(urls) == 3 and all(url.startswith("/docs/assets/") for url in urls), urls
    assert "http" not in page.text.replace("http://daemon.test", "")  # nothing from elsewhere
    for url, response in assets.items():
        assert response.status_code == 200, url
        assert len(response.content) > 500, url
    assert "url: '/openapi.json'" in page.text
    assert_error(redoc, 404, "not_found")  # ReDoc exists only on a CDN: not offered


# -- strict types at the edge ---------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"wait": "no"},
        {"wait": 0},
        {"timeout_s": "10"},
        {"memory_mb": "512"},
        {"memory_mb": 512.0},
        {"cpus": "1"},
        {"network": "false"},
    ],
    ids=[
        "wait-str",
        "wait-int",
        "timeout-str",
        "memory-str",
        "memory-float",
        "cpus-str",
        "network-str",
    ],
)
async def test_numbers_and_flags_of_another_type_are_refused(
    settings: Settings, fields: dict[str, Any]
) -> None:
    async with running_service(settings) as svc:
        response = await svc.client.post("/v1/runs", json={"code": "x", **fields})
        multipart = await svc.client.post(
            "/v1/runs", data={"request": json.dumps({"code": "x", **fields})}, files=[ONE_FILE]
        )
        assert svc.executor.started == []
    (name,) = fields
    assert assert_error(response, 422, "invalid_request").startswith(f"body.{name}: ")
    assert assert_error(multipart, 422, "invalid_request").startswith(f"body.{name}: ")


async def test_an_integer_is_a_number(settings: Settings) -> None:
    async with running_service(settings) as svc:
        response = await svc.client.post("/v1/runs", json={"code": "x", "timeout_s": 10})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/sessions", {"cpus": "1"}),
        ("/v1/sessions", {"memory_mb": "512"}),
        ("/v1/sessions", {"cell_timeout_s": "5"}),
        ("/v1/sessions/s1/cells", {"code": "1", "wait": "no"}),
        ("/v1/sessions/s1/cells", {"code": "1", "timeout_s": "5"}),
    ],
)
async def test_session_bodies_are_strict_too(
    settings: Settings, path: str, body: dict[str, Any]
) -> None:
    async with running_service(settings) as svc:
        response = await svc.client.post(path, json=body)
        assert svc.daemon.sessions.sessions() == []  # nothing was started
    assert_error(response, 422, "invalid_request")


# -- paths are taken as they are -----------------------------------------------------------


@pytest.mark.parametrize("path", ["a//b.csv", "a/./b.csv", "./a.csv", "a/", "data/"])
async def test_paths_that_are_not_normal_are_refused_not_rewritten(
    settings: Settings, path: str
) -> None:
    async with running_service(settings) as svc:
        as_json = await svc.client.post(
            "/v1/runs", json={"code": "x", "files": [{"path": path, "content_b64": ""}]}
        )
        as_part = await svc.client.post(
            "/v1/runs",
            data={"request": json.dumps({"code": "x"})},
            files=[("files", (path, b"1", "text/plain"))],
        )
        assert svc.executor.started == []
    for response in (as_json, as_part):
        assert "is not normalised" in assert_error(response, 422, "invalid_request")


@pytest.mark.parametrize("path", ["a//b.csv", "a/", "%2E%2E/up"])
async def test_session_file_paths_are_refused_not_rewritten(settings: Settings, path: str) -> None:
    async with running_service(settings) as svc:
        put = await svc.client.put(f"/v1/sessions/s1/files/{path}", content=b"1")
        get = await svc.client.get(f"/v1/sessions/s1/files/{path}")
    for response in (put, get):
        assert "path: path" in assert_error(response, 400, "invalid_request")


# -- multipart: every part is used or refused -----------------------------------------------


@pytest.mark.parametrize(
    ("data", "files", "location"),
    [
        ({"request": '{"code": "x"}'}, [("file", ("sales.csv", b"1", "text/csv"))], "body.file"),
        ({"request": '{"code": "x"}', "note": "hi"}, [ONE_FILE], "body.note"),
        ({"request": '{"code": "x"}', "files": "not a file"}, [ONE_FILE], "body.files"),
        ({"request": '{"code": '}, [("files", ("a.csv", b"1", "text/csv"))], "body.request"),
    ],
    ids=["file-under-another-name", "stray-field", "files-not-a-file", "bad-json"],
)
async def test_multipart_parts_other_than_request_and_files_are_422(
    settings: Settings, data: dict[str, str], files: list[Any], location: str
) -> None:
    async with running_service(settings) as svc:
        response = await svc.client.post("/v1/runs", data=data, files=files)
        assert svc.executor.started == []
    assert assert_error(response, 422, "invalid_request").startswith(location)


# -- body caps that follow the input caps ---------------------------------------------------


async def test_a_multipart_upload_may_fill_the_input_caps(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, max_body_bytes=4096, max_input_file_bytes=3 * MiB, max_input_total_bytes=4 * MiB
    )
    big = b"x" * (3 * MiB)
    async with running_service(settings) as svc:
        fits = await svc.client.post(
            "/v1/runs",
            data={"request": json.dumps({"code": "x"})},
            files=[
                ("files", ("big.bin", big, "application/octet-stream")),
                ("files", ("small.bin", b"y" * MiB, "application/octet-stream")),
            ],
        )
        as_json = await svc.client.post(
            "/v1/runs",
            json={"code": "x", "files": [{"path": "big.bin", "content_b64": "eA==" * MiB}]},
        )
    assert fits.status_code == 200, fits.text
    assert "file big.bin" in fits.json()["stdout"]
    # JSON carries base64 within max_body_bytes; the refusal says what to do instead.
    assert "send large input files as multipart/form-data" in assert_error(
        as_json, 413, "payload_too_large"
    )


async def test_a_multipart_body_past_the_input_caps_is_413_without_reading_it(
    tmp_path: Path,
) -> None:
    settings = make_settings(
        tmp_path, max_body_bytes=4096, max_input_files=1, max_input_total_bytes=MiB
    )
    cap = 4096 + MiB + MULTIPART_PART_OVERHEAD
    async with running_service(settings) as svc:
        response = await svc.client.post(
            "/v1/runs",
            data={"request": json.dumps({"code": "x"})},
            files=[("files", ("big.bin", b"x" * (cap + 1), "application/octet-stream"))],
        )
        assert svc.executor.started == []
    assert f"larger than {cap} bytes" in assert_error(response, 413, "payload_too_large")


async def test_a_chunked_multipart_body_past_the_cap_is_413_while_reading(
    tmp_path: Path,
) -> None:
    settings = make_settings(
        tmp_path, max_body_bytes=4096, max_input_files=1, max_input_total_bytes=MiB
    )
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="request"\r\n\r\n{{"code": "x"}}'
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a"\r\n\r\n'
    ).encode()

    async def chunks() -> Any:  # no Content-Length: only counting can stop it
        yield head
        for _ in range(3):
            yield b"x" * MiB

    async with running_service(settings) as svc:
        response = await svc.client.post(
            "/v1/runs",
            content=chunks(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert svc.executor.started == []
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


# -- the record's status -----------------------------------------------------------------


async def test_a_records_status_is_an_enum_while_active_and_after(settings: Settings) -> None:
    async with running_service(settings) as svc:
        accepted = await svc.client.post("/v1/runs", json={"code": "block", "wait": False})
        run_id = accepted.json()["id"]
        active = svc.daemon.store.get(run_id)
        svc.executor.release.set()
    assert isinstance(active, RunRecord)
    assert isinstance(active.status, ActiveStatus) and active.status in ("queued", "running")
    parsed = RunRecord.model_validate(
        {
            "id": "r",
            "status": "queued",
            "created_at": "2025-01-01T00:00:00Z",
            "request": {"code": "x"},
        }
    )
    assert parsed.status is ActiveStatus.QUEUED
    assert (
        RunRecord.model_validate({**parsed.model_dump(), "status": "failed"}).status
        is RunStatus.FAILED
    )
