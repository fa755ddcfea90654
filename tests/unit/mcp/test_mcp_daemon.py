"""The daemon's /mcp in process: tokens, Host allow-list, the same run records, no extra."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent
from service_fakes import TOKEN, FakeExecutor, make_settings, running_service, tenant_token

import ai_data_agent.service.info
import ai_data_agent.service.mcp
from ai_data_agent.service.mcp.http import transport_security

pytestmark = pytest.mark.anyio
INIT = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
JSON = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def settings(tmp_path: Path, **overrides: object):  # type: ignore[no-untyped-def]
    return make_settings(tmp_path, mcp_allowed_hosts="daemon.test, localhost", **overrides)


async def test_tokens_are_checked_before_the_protocol(tmp_path: Path) -> None:
    async with running_service(settings(tmp_path), token=None) as service:
        missing = await service.client.post("/mcp", json=INIT, headers=JSON)
        wrong = await service.client.post(
            "/mcp", json=INIT, headers={**JSON, "Authorization": "Bearer nope"}
        )
        for response in (missing, wrong):
            assert response.status_code == 401, response.text
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.json()["error"]["code"] == "unauthorized"


async def test_a_foreign_host_is_refused(tmp_path: Path) -> None:
    async with running_service(settings(tmp_path)) as service:
        foreign = await service.client.post(
            "/mcp", json=INIT, headers={**JSON, "Host": "attacker.example"}
        )
        assert foreign.status_code == 421
        browser = await service.client.post(
            "/mcp", json=INIT, headers={**JSON, "Origin": "http://attacker.example"}
        )
        assert browser.status_code == 403


async def test_a_run_through_mcp_is_a_run_of_the_api(tmp_path: Path) -> None:
    async with running_service(settings(tmp_path), FakeExecutor()) as service:
        transport = httpx2.ASGITransport(app=service.app)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            httpx2.AsyncClient(transport=transport, headers=headers) as http,
            Client(streamable_http_client("http://daemon.test/mcp", http_client=http)) as mcp,
        ):
            result = await mcp.call_tool("run_python", {"code": "print(1)"})
        block = result.content[0]
        assert isinstance(block, TextContent) and not result.is_error
        run_id = block.text.split("run ")[1].split(";")[0]
        record = (await service.client.get(f"/v1/runs/{run_id}")).json()
        assert record["status"] == "succeeded"
        assert record["request"]["code"] == "print(1)"
        assert record["request"]["timeout_s"] == service.settings.mcp_cell_timeout_s
        info = (await service.client.get("/v1/info")).json()
        assert "mcp" in info["features"]


async def test_without_the_extra_the_daemon_serves_everything_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ai_data_agent.service.mcp, "available", lambda: False)
    monkeypatch.setattr(ai_data_agent.service.info, "mcp_available", lambda: False)
    async with running_service(settings(tmp_path)) as service:
        assert (await service.client.post("/mcp", json=INIT, headers=JSON)).status_code == 404
        info = (await service.client.get("/v1/info")).json()
        assert "mcp" not in info["features"] and "runs" in info["features"]


def test_allowed_hosts_take_any_port() -> None:
    security = transport_security(make_settings(Path("."), mcp_allowed_hosts="Example.COM"))
    assert security.allowed_hosts == ["example.com", "example.com:*"]
    assert "https://example.com:*" in security.allowed_origins


async def test_a_tenant_over_its_quota_reads_the_quota_and_the_wait(tmp_path: Path) -> None:
    svc_settings = settings(tmp_path)
    header = tenant_token(svc_settings.data_dir, "team-a", concurrent_runs=0, queued_runs=0)
    async with running_service(svc_settings, FakeExecutor()) as service:
        transport = httpx2.ASGITransport(app=service.app)
        async with (
            httpx2.AsyncClient(transport=transport, headers=header) as http,
            Client(streamable_http_client("http://daemon.test/mcp", http_client=http)) as mcp,
        ):
            result = await mcp.call_tool("run_python", {"code": "print(1)"})
        block = result.content[0]
        assert result.is_error and isinstance(block, TextContent)
        assert block.text.startswith("error (quota_exceeded): tenant 'team-a' is at its quota")
        assert "concurrent_runs = 0 (0 in use)" in block.text
        assert re.search(r"\(retry after [1-9]\d* s\)$", block.text), block.text
        runs = (await service.client.get("/v1/runs", params={"tenant": "team-a"})).json()
        assert runs["items"] == []  # nothing recorded
