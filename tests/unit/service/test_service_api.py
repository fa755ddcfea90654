"""The HTTP API in-process (httpx ASGI transport) over a fake executor: shapes, auth, errors."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import anyio
import pytest
from service_fakes import (
    TOKEN,
    FakeExecutor,
    assert_error,
    make_settings,
    running_service,
    wait_for_status,
    wait_until,
)

import ai_data_agent.service
from ai_data_agent.api_models import ErrorBody, RunAccepted, RunPage, RunRecord
from ai_data_agent.models import RunResult
from ai_data_agent.settings import Settings

pytestmark = pytest.mark.anyio


def test_public_surface() -> None:
    assert ai_data_agent.service.__all__ == ["create_app", "serve"]


# -- runs ------------------------------------------------------------------------------


async def test_post_waits_and_answers_the_result(settings: Settings) -> None:
    async with running_service(settings) as svc:
        response = await svc.client.post("/v1/runs", json={"code": "print(1)"})
        assert response.status_code == 200, response.text
        result = RunResult.model_validate(response.json())
        assert result.status == "succeeded"
        assert result.stdout == "ran: print(1)\n"

        record = RunRecord.model_validate((await svc.client.get(f"/v1/runs/{result.id}")).json())
        assert record.status == "succeeded"
        assert record.result == result
        assert record.request.code == "print(1)"
        assert record.started_at is not None and record.finished_at is not None
        assert record.created_at <= record.started_at <= record.finished_at


@pytest.mark.parametrize(
    ("url", "body"),
    [("/v1/runs", {"code": "x", "wait": False}), ("/v1/runs?wait=false", {"code": "x"})],
    ids=["body", "query"],
)
async def test_no_wait_answers_202_with_location(
    settings: Settings, url: str, body: dict[str, object]
) -> None:
    async with running_service(settings) as svc:
        response = await svc.client.post(url, json=body)
        assert response.status_code == 202, response.text
        accepted = RunAccepted.model_validate(response.json())
        assert response.headers["location"] == f"/v1/runs/{accepted.id}"
        record = await wait_for_status(svc.client, accepted.id, {"succeeded"})
        assert record["result"]["stdout"] == "ran: x\n"


async def test_query_wait_overrides_the_body(settings: Settings) -> None:
    async with running_service(settings) as svc:
        response = await svc.client.post("/v1/runs?wait=true", json={"code": "x", "wait": False})
        assert response.status_code == 200
        assert response.json()["status"] == "succeeded"


async def test_the_record_exists_before_the_executor_starts(settings: Settings) -> None:
    executor = FakeExecutor()
    seen: list[str] = []
    async with running_service(settings, executor) as svc:
        executor.on_start = lambda run_id: seen.append(svc.daemon.store.get(run_id).status)
        await svc.client.post("/v1/runs", json={"code": "x"})
    assert seen == ["running"]


async def test_bad_code_is_a_result_not_an_error(settings: Settings) -> None:
    async with running_service(settings) as svc:
        response = await svc.client.post("/v1/runs", json={"code": "fail"})
        assert response.status_code == 200
        assert response.json()["status"] == "failed"
        assert response.json()["exit_code"] == 1


async def test_executor_failure_becomes_an_error_record(settings: Settings) -> None:
    async with running_service(settings) as svc:
        response = await svc.client.post("/v1/runs", json={"code": "explode"})
        assert response.status_code == 200
        result = response.json()
        assert result["status"] == "error"
        assert "cannot create the sandbox container" in result["error"]
        record = (await svc.client.get(f"/v1/runs/{result['id']}")).json()
        assert record["status"] == "error"
        assert record["result"] is None  # no container result to keep
        assert "cannot create the sandbox container" in record["error"]


async def test_unexpected_executor_exception_is_an_error_without_details(
    settings: Settings,
) -> None:
    async with running_service(settings) as svc:
        response = await svc.client.post("/v1/runs", json={"code": "crash"})
        assert response.status_code == 200
        assert response.json()["status"] == "error"
        assert "secret-internal-detail" not in response.text
        assert "RuntimeError" in response.json()["error"]
        # The worker survived: the next run still runs.
        follow_up = await svc.client.post("/v1/runs", json={"code": "ok"})
        assert follow_up.json()["status"] == "succeeded"


# -- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "body.code: Field required"),
        ({"code": "x", "requirements": ["-r other.txt"]}, "pip options are not accepted"),
        ({"code": "x", "requirements": ["pkg @ https://e.com/x.whl"]}, "direct URL"),
        ({"code": "x", "env": {"LD_PRELOAD": "x"}}, "reserved for the sandbox"),
        ({"code": "x", "env": {"1BAD": "x"}}, "not a valid variable name"),
        ({"code": "x", "surprise": 1}, "body.surprise: Extra inputs are not permitted"),
        ({"code": "x", "timeout_s": -1}, "body.timeout_s"),
        ({"code": 5}, "body.code"),
    ],
)
async def test_invalid_bodies_are_422(
    settings: Settings, body: dict[str, object], fragment: str
) -> None:
    async with running_service(settings) as svc:
        response = await svc.client.post("/v1/runs", json=body)
        message = assert_error(response, 422, "invalid_request")
        assert fragment in message
        assert (await svc.client.get("/v1/runs")).json()["total"] == 0  # nothing recorded


async def test_malformed_json_is_422(settings: Settings) -> None:
    async with running_service(settings) as svc:
        response = await svc.client.post(
            "/v1/runs", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert_error(response, 422, "invalid_request")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"code": "x", "timeout_s": 10_000}, "timeout_s: 10000 is above the server cap"),
        ({"code": "x", "network": True}, "network"),
        ({"code": "x", "requirements": ["a", "b", "c"]}, "requirements: 3 given, at most 2"),
    ],
)
async def test_requests_beyond_server_limits_are_400(
    tmp_path: Path, body: dict[str, object], fragment: str
) -> None:
    settings = make_settings(tmp_path, max_requirements=2)
    async with running_service(settings) as svc:
        response = await svc.client.post("/v1/runs", json=body)
        assert fragment in assert_error(response, 400, "invalid_request")
        assert svc.executor.started == []


async def test_bad_query_parameters_are_422(settings: Settings) -> None:
    async with running_service(settings) as svc:
        bad = ("status=bogus", "limit=0", "limit=100000", "offset=-1", "since=yesterday")
        for query in (*bad, "since=2025-03-01T12:00:00"):  # a time without a zone is ambiguous
            assert_error(await svc.client.get(f"/v1/runs?{query}"), 422, "invalid_request")


# -- auth --------------------------------------------------------------------------------


async def test_missing_or_wrong_token_is_401(settings: Settings) -> None:
    async with running_service(settings, token=None) as svc:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}):
            for method, url in (
                ("GET", "/v1/runs"),
                ("POST", "/v1/runs"),
                ("GET", "/metrics"),
                ("GET", "/v1/runs/abc"),
                ("DELETE", "/v1/runs/abc"),
            ):
                response = await svc.client.request(
                    method, url, headers=headers, json={"code": "x"} if method == "POST" else None
                )
                assert_error(response, 401, "unauthorized")
                assert response.headers["www-authenticate"].startswith("Bearer")
        assert svc.executor.started == []
        ok = await svc.client.get("/v1/runs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200


async def test_health_and_readiness_need_no_token(settings: Settings) -> None:
    async with running_service(settings, token=None) as svc:
        assert (await svc.client.get("/healthz")).json() == {"status": "ok"}
        ready = await svc.client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["image"] == "fake/sandbox:1"
        assert (ready.json()["admission"], ready.json()["execution"]) == ("ready", "ready")


async def test_no_tokens_configured_means_no_auth(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, api_tokens=[])
    async with running_service(settings, token=None) as svc:
        assert (await svc.client.post("/v1/runs", json={"code": "x"})).status_code == 200
        assert (await svc.client.get("/metrics")).status_code == 200


async def test_token_file_is_reread_and_never_fails_open(tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("first\n\n  second  \n")
    settings = make_settings(tmp_path / "data", api_tokens=[], api_token_file=token_file)
    async with running_service(settings, token=None) as svc:

        async def status(token: str) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            return (await svc.client.get("/v1/runs", headers=headers)).status_code

        assert await status("first") == 200
        assert await status("second") == 200
        token_file.write_text("third\n")  # rotation, no restart
        assert await status("first") == 401
        assert await status("third") == 200
        token_file.write_text("")  # an emptied file locks everyone out, it does not disable auth
        assert await status("third") == 401
        assert (await svc.client.get("/v1/runs")).status_code == 401
        token_file.unlink()
        assert_error(
            await svc.client.get("/v1/runs", headers={"Authorization": "Bearer third"}),
            503,
            "not_ready",
        )


# -- errors ------------------------------------------------------------------------------


async def test_unknown_run_and_route_are_404(settings: Settings) -> None:
    async with running_service(settings) as svc:
        assert_error(await svc.client.get("/v1/runs/nope"), 404, "not_found")
        assert_error(await svc.client.delete("/v1/runs/nope"), 404, "not_found")
        assert_error(await svc.client.get("/v2/anything"), 404, "not_found")
        assert_error(await svc.client.put("/v1/runs", json={}), 405, "method_not_allowed")


async def test_body_over_the_cap_is_413_by_content_length(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_body_bytes=2048)
    async with running_service(settings) as svc:
        response = await svc.client.post("/v1/runs", json={"code": "x" * 4000})
        assert "2048 bytes" in assert_error(response, 413, "payload_too_large")
        ok = await svc.client.post("/v1/runs", json={"code": "x" * 1000})
        assert ok.status_code == 200
        assert svc.executor.started == [ok.json()["id"]]


async def test_body_over_the_cap_is_413_while_reading(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_body_bytes=2048)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        yield b'{"code": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}'

    async with running_service(settings) as svc:
        response = await svc.client.post(
            "/v1/runs", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert_error(response, 413, "payload_too_large")
        assert svc.executor.started == []


async def test_internal_errors_are_500_without_details(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_service(settings) as svc:

        def broken(run_id: str) -> None:
            raise RuntimeError("secret-internal-detail")

        monkeypatch.setattr(svc.daemon.store, "get", broken)
        response = await svc.client.get("/v1/runs/abc")
        message = assert_error(response, 500, "internal")
        assert "secret" not in response.text and "RuntimeError" not in message


async def test_a_store_that_cannot_be_written_refuses_runs_with_503(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_service(settings) as svc:

        def full(*args: object, **kwargs: object) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(svc.daemon.store, "insert", full)
        response = await svc.client.post("/v1/runs", json={"code": "x"})
        assert "cannot be written" in assert_error(response, 503, "not_ready")
        assert svc.executor.started == []


async def test_openapi_document_and_docs(settings: Settings) -> None:
    async with running_service(settings) as svc:
        spec = (await svc.client.get("/openapi.json")).json()
        assert {"/v1/runs", "/v1/runs/{run_id}", "/healthz", "/readyz", "/metrics"} <= set(
            spec["paths"]
        )
        assert "HTTPBearer" in spec["components"]["securitySchemes"]
        assert (await svc.client.get("/docs")).status_code == 200


# -- listing -------------------------------------------------------------------------


async def test_list_newest_first_with_pagination_and_status_filter(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_concurrent_runs=2)
    async with running_service(settings) as svc:
        ids = []
        for code in ("a", "fail", "b", "fail", "c"):
            ids.append((await svc.client.post("/v1/runs", json={"code": code})).json()["id"])
        page = RunPage.model_validate((await svc.client.get("/v1/runs?limit=2")).json())
        assert (page.total, page.limit, page.offset) == (5, 2, 0)
        assert [r.id for r in page.items] == ids[::-1][:2]
        page = RunPage.model_validate((await svc.client.get("/v1/runs?limit=2&offset=4")).json())
        assert [r.id for r in page.items] == [ids[0]]
        failed = RunPage.model_validate((await svc.client.get("/v1/runs?status=failed")).json())
        assert failed.total == 2
        assert [r.id for r in failed.items] == [ids[3], ids[1]]
        none = (await svc.client.get("/v1/runs?status=queued")).json()
        assert none == {"items": [], "total": 0, "limit": 50, "offset": 0}


async def test_list_since_keeps_runs_created_at_or_after_it(settings: Settings) -> None:
    async with running_service(settings) as svc:
        first = (await svc.client.post("/v1/runs", json={"code": "a"})).json()["id"]
        record = RunRecord.model_validate((await svc.client.get(f"/v1/runs/{first}")).json())
        second = (await svc.client.post("/v1/runs", json={"code": "b"})).json()["id"]
        created = record.created_at - timedelta(milliseconds=1)  # the record keeps microseconds
        iso = created.isoformat().replace("+00:00", "Z")
        for since in (quote(iso), f"{created.timestamp():.6f}"):
            page = RunPage.model_validate((await svc.client.get(f"/v1/runs?since={since}")).json())
            assert [r.id for r in page.items] == [second, first] and page.total == 2
        later = quote((record.created_at + timedelta(days=1)).isoformat())
        page = RunPage.model_validate((await svc.client.get(f"/v1/runs?since={later}")).json())
        assert (page.items, page.total) == ([], 0)


# -- load ------------------------------------------------------------------------------


async def test_queue_full_is_429_at_once_and_keeps_no_record(settings: Settings) -> None:
    async with running_service(settings) as svc:
        first = (await svc.client.post("/v1/runs?wait=false", json={"code": "block"})).json()
        await wait_until(lambda: first["id"] in svc.executor.started, what="first run to start")
        second = (await svc.client.post("/v1/runs?wait=false", json={"code": "x"})).json()
        with anyio.fail_after(2):  # at once, not after a wait
            third = await svc.client.post("/v1/runs", json={"code": "x"})
        assert_error(third, 429, "queue_full")
        assert third.headers["retry-after"].isdigit()
        page = (await svc.client.get("/v1/runs")).json()
        assert page["total"] == 2
        assert {r["status"] for r in page["items"]} == {"running", "queued"}
        metrics = (await svc.client.get("/metrics")).text
        assert 'ai_data_agent_runs_rejected_total{reason="queue_full"} 1.0' in metrics
        assert "ai_data_agent_queue_depth 1.0" in metrics
        assert "ai_data_agent_runs_running 1.0" in metrics

        svc.executor.release.set()  # both finish: nothing dropped
        await wait_for_status(svc.client, first["id"], {"succeeded"})
        await wait_for_status(svc.client, second["id"], {"succeeded"})
        assert (await svc.client.post("/v1/runs", json={"code": "x"})).status_code == 200


async def test_runs_use_at_most_max_concurrent_workers(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_concurrent_runs=2, max_queued_runs=5)
    async with running_service(settings) as svc:
        ids = [
            (await svc.client.post("/v1/runs?wait=false", json={"code": "block"})).json()["id"]
            for _ in range(4)
        ]
        await wait_until(lambda: len(svc.executor.started) == 2, what="two runs to start")
        await anyio.sleep(0.1)
        assert len(svc.executor.started) == 2
        svc.executor.release.set()
        for run_id in ids:
            await wait_for_status(svc.client, run_id, {"succeeded"})


# -- cancel ----------------------------------------------------------------------------


async def test_delete_a_queued_run_cancels_it_without_starting(settings: Settings) -> None:
    async with running_service(settings) as svc:
        first = (await svc.client.post("/v1/runs?wait=false", json={"code": "block"})).json()
        await wait_until(lambda: first["id"] in svc.executor.started, what="first run to start")
        queued = (await svc.client.post("/v1/runs?wait=false", json={"code": "x"})).json()
        response = await svc.client.delete(f"/v1/runs/{queued['id']}")
        assert response.status_code == 200
        record = RunRecord.model_validate(response.json())
        assert record.status == "cancelled"
        assert record.started_at is None and record.result is None
        assert "before it started" in (record.error or "")
        svc.executor.release.set()
        await wait_for_status(svc.client, first["id"], {"succeeded"})
        assert queued["id"] not in svc.executor.started


async def test_delete_a_running_run_cancels_it(settings: Settings) -> None:
    async with running_service(settings) as svc:
        run = (await svc.client.post("/v1/runs?wait=false", json={"code": "block"})).json()
        await wait_until(lambda: run["id"] in svc.executor.started, what="run to start")
        response = await svc.client.delete(f"/v1/runs/{run['id']}")
        assert response.status_code == 200
        record = RunRecord.model_validate(response.json())
        assert record.status == "cancelled"
        assert record.result is not None and record.result.stdout == "partial\n"
        assert svc.executor.cancelled == [run["id"]]
        # The worker is free again.
        assert (await svc.client.post("/v1/runs", json={"code": "x"})).status_code == 200


async def test_a_waiting_post_gets_the_cancelled_result(settings: Settings) -> None:
    async with running_service(settings) as svc:
        answers = []

        async def post() -> None:
            answers.append(await svc.client.post("/v1/runs", json={"code": "block"}))

        async with anyio.create_task_group() as group:
            group.start_soon(post)
            await wait_until(lambda: len(svc.executor.started) == 1, what="run to start")
            await svc.client.delete(f"/v1/runs/{svc.executor.started[0]}")
        assert answers[0].status_code == 200
        assert answers[0].json()["status"] == "cancelled"


async def test_delete_of_a_finished_run_returns_it_unchanged(settings: Settings) -> None:
    async with running_service(settings) as svc:
        done = (await svc.client.post("/v1/runs", json={"code": "x"})).json()
        response = await svc.client.delete(f"/v1/runs/{done['id']}")
        assert response.status_code == 200
        assert response.json()["status"] == "succeeded"


# -- health and metrics ------------------------------------------------------------------


async def test_readyz_is_503_with_reasons(settings: Settings) -> None:
    executor = FakeExecutor()
    async with running_service(settings, executor) as svc:
        executor.backend.ping_error = ConnectionError("engine down")
        executor.backend.image_error = RuntimeError("no image")
        response = await svc.client.get("/readyz")
        message = assert_error(response, 503, "not_ready")
        assert "docker: ConnectionError: engine down" in message
        assert "image: RuntimeError: no image" in message
        assert "store" not in message
        ErrorBody.model_validate(response.json())


async def test_readyz_checks_every_directory_the_daemon_writes(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor = FakeExecutor()
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory: as unwritable as a read-only root, even for root")
    index = blocked / "engines" / "e1" / "envcache.sqlite3"
    async with running_service(settings, executor) as svc:
        cache = SimpleNamespace(index_path=index)  # where the index goes, unwritable
        monkeypatch.setattr(executor, "env_cache", cache, raising=False)
        message = assert_error(await svc.client.get("/readyz"), 503, "not_ready")
        assert f"writable: {index.parent}: Not a directory" in message
        writable = SimpleNamespace(index_path=tmp_path / "cache" / "envcache.sqlite3")
        monkeypatch.setattr(executor, "env_cache", writable, raising=False)
        ready = await svc.client.get("/readyz")
        assert ready.status_code == 200, ready.text
        expected = f"{settings.data_dir}, {settings.storage_root}, {tmp_path / 'cache'}"
        assert ready.json()["checks"]["writable"] == expected


async def test_readyz_checks_the_storage_directory(settings: Settings, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    settings = settings.model_copy(update={"storage_dir": shared})
    async with running_service(settings) as svc:
        ready = await svc.client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert str(shared) in ready.json()["checks"]["writable"]
        shutil.rmtree(shared)
        shared.write_text("a file where the storage directory was: unwritable, even for root")
        message = assert_error(await svc.client.get("/readyz"), 503, "not_ready")
        assert f"writable: {shared}: File exists" in message


async def test_readyz_does_not_wait_for_a_hung_engine(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ai_data_agent.service.health.READY_CHECK_TIMEOUT_S", 0.2)
    executor = FakeExecutor()
    executor.backend.ping_gate = threading.Event()
    async with running_service(settings, executor) as svc:
        try:
            # Bounds far below "never" that a loaded machine still meets.
            for _ in range(8):  # more hung probes than the probes' threads
                with anyio.fail_after(10):
                    response = await svc.client.get("/readyz")
                assert "docker: no answer within 0.2 s" in assert_error(response, 503, "not_ready")
            # The API itself is not starved of threads.
            with anyio.fail_after(10):
                assert (await svc.client.post("/v1/runs", json={"code": "x"})).status_code == 200
        finally:
            executor.backend.ping_gate.set()


async def test_metrics_text_names_every_metric(settings: Settings) -> None:
    async with running_service(settings) as svc:
        await svc.client.post("/v1/runs", json={"code": "x"})
        await svc.client.post("/v1/runs", json={"code": "fail"})
        response = await svc.client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
        for line in (
            'ai_data_agent_runs_total{status="succeeded"} 1.0',
            'ai_data_agent_runs_total{status="failed"} 1.0',
            "ai_data_agent_run_install_seconds_count 2.0",
            "ai_data_agent_run_execute_seconds_count 2.0",
            "ai_data_agent_run_total_seconds_count 2.0",
            "ai_data_agent_queue_depth 0.0",
            "ai_data_agent_runs_running 0.0",
            "ai_data_agent_containers_reaped_total 0.0",
        ):
            assert line in text, line
