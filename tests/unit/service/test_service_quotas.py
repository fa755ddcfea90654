"""Tenants' quotas and the fair queue in the app (fake executor): 429 ``quota_exceeded`` with
the quota, its limit and its use; counts right the moment a run ends or a session closes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes import FakeBackend
from fastapi import FastAPI
from service_fakes import (
    TOKEN,
    make_settings,
    running_service,
    tenant_token,
    wait_for_status,
    wait_until,
)

from ai_data_agent.executor.core import Executor
from ai_data_agent.service import create_app

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def sessions_app(
    tmp_path: Path, sandbox_tmp: Path, **quotas: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, dict[str, str]]]:
    """The app on the fake engine (sessions run), its client, and the headers of a token of
    ``team-a``, a tenant with ``quotas``."""
    data = tmp_path / "data"
    team = tenant_token(data, "team-a", **quotas)
    config = make_settings(data, max_sessions=5, memory_budget_mb=0)
    executor = Executor(config, backend=FakeBackend(sandbox_tmp, emulate_isolation=True))
    app = create_app(config, executor)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://d") as client:
            yield app, client, team


def assert_quota(response: httpx.Response, quota: str, limit: float, used: float) -> None:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert (error["code"], error["quota"], error["limit"], error["used"]) == (
        "quota_exceeded",
        quota,
        limit,
        used,
    )
    assert f"{quota} = {limit}" in error["message"]
    assert int(response.headers["retry-after"]) > 0


async def test_a_tenant_over_its_run_quota_gets_429_and_its_queued_run_waits_at_its_cap(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, max_concurrent_runs=2, max_queued_runs=4)
    team = tenant_token(tmp_path, "team-a", concurrent_runs=1, queued_runs=1)
    other = tenant_token(tmp_path, "team-b")
    async with running_service(settings) as service:
        client, executor = service.client, service.executor
        first = await client.post("/v1/runs?wait=false", json={"code": "block"}, headers=team)
        second = await client.post("/v1/runs?wait=false", json={"code": "block"}, headers=team)
        assert first.status_code == second.status_code == 202
        await wait_until(lambda: len(executor.started) == 1, what="a's first run")
        third = await client.post("/v1/runs?wait=false", json={"code": "x"}, headers=team)
        assert_quota(third, "queued_runs", 1, 1)
        # Its second run waits at its cap though a slot is free; another tenant's runs at once.
        other_run = await client.post("/v1/runs?wait=true", json={"code": "x"}, headers=other)
        assert other_run.json()["status"] == "succeeded" and len(executor.started) == 2
        admin = [await client.post("/v1/runs?wait=false", json={"code": "x"}) for _ in range(3)]
        assert [r.status_code for r in admin] == [202] * 3  # the built-in admin: unlimited
        metrics = (await client.get("/metrics")).text
        assert 'ai_data_agent_runs_rejected_total{reason="quota_exceeded"} 1.0' in metrics
        assert 'quota_refusals_total{quota="queued_runs",tenant="team-a"} 1.0' in metrics
        executor.release.set()
        for accepted in (first, second):
            await wait_for_status(client, accepted.json()["id"], {"succeeded"})
        metrics = (await client.get("/metrics")).text
        assert 'ai_data_agent_tenant_runs_total{status="succeeded",tenant="team-a"} 2.0' in metrics
        assert 'ai_data_agent_tenant_runs_total{status="succeeded",tenant="team-b"} 1.0' in metrics


async def test_queued_runs_0_refuses_beyond_concurrent_runs_and_counts_a_run_out_as_it_ends(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, max_concurrent_runs=2, max_queued_runs=4)
    team = tenant_token(tmp_path, "team-a", concurrent_runs=1, queued_runs=0)
    async with running_service(settings) as service:
        client = service.client
        first = await client.post("/v1/runs?wait=false", json={"code": "block"}, headers=team)
        assert first.status_code == 202
        refused = await client.post("/v1/runs?wait=false", json={"code": "x"}, headers=team)
        assert_quota(refused, "concurrent_runs", 1, 1)
        service.executor.release.set()
        await wait_for_status(client, first.json()["id"], {"succeeded"})
        for _ in range(5):  # each answer comes after its slot is free: the next fits at once
            done = await client.post("/v1/runs?wait=true", json={"code": "x"}, headers=team)
            assert done.status_code == 200 and done.json()["status"] == "succeeded", done.text


async def test_a_flooding_tenant_does_not_starve_another(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_concurrent_runs=1, max_queued_runs=20)
    flood, single = tenant_token(tmp_path, "flood"), tenant_token(tmp_path, "single")
    async with running_service(settings) as service:
        client, executor = service.client, service.executor
        ids = []
        for _ in range(6):
            response = await client.post(
                "/v1/runs?wait=false", json={"code": "block"}, headers=flood
            )
            ids.append(response.json()["id"])
        await wait_until(lambda: len(executor.started) == 1, what="the flood's first run")
        late = (
            await client.post("/v1/runs?wait=false", json={"code": "block"}, headers=single)
        ).json()["id"]
        executor.release.set()
        await wait_until(lambda: len(executor.started) == 7, what="every run")
        assert executor.started[:3] == [ids[0], late, ids[1]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_tenants_sessions_are_capped_and_a_close_frees_one_at_once(
    tmp_path: Path, sandbox_tmp: Path
) -> None:
    async with sessions_app(tmp_path, sandbox_tmp, concurrent_sessions=2) as (app, client, team):
        created = [await client.post("/v1/sessions", json={}, headers=team) for _ in range(2)]
        assert [r.status_code for r in created] == [201, 201]
        refused = await client.post("/v1/sessions", json={}, headers=team)
        assert_quota(refused, "concurrent_sessions", 2, 2)
        metrics = app.state.daemon.metrics.render().decode()
        assert 'refusals_total{quota="concurrent_sessions",tenant="team-a"} 1.0' in metrics
        admin = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.post("/v1/sessions", json={}, headers=admin)).status_code == 201
        closed = await client.delete(f"/v1/sessions/{created[0].json()['id']}", headers=team)
        assert closed.status_code == 200, closed.text
        assert (await client.post("/v1/sessions", json={}, headers=team)).status_code == 201
        raised = await client.patch(
            "/v1/tenants/team-a", json={"quotas": {"concurrent_sessions": None}}, headers=admin
        )
        assert raised.status_code == 200, raised.text
        assert (await client.post("/v1/sessions", json={}, headers=team)).status_code == 201


async def test_a_tenant_over_its_cpu_seconds_per_hour_is_refused_sessions_and_cells(
    tmp_path: Path, sandbox_tmp: Path
) -> None:
    async with sessions_app(tmp_path, sandbox_tmp, cpu_seconds_per_hour=1) as (app, client, team):
        session = await client.post("/v1/sessions", json={}, headers=team)
        assert session.status_code == 201, session.text
        daemon = app.state.daemon
        daemon.cpu.charge("team-a", 1.5, object_id="run-1")  # as a run's end does
        refused = await client.post("/v1/sessions", json={}, headers=team)
        assert_quota(refused, "cpu_seconds_per_hour", 1, 1.5)
        assert 3590 <= int(refused.headers["retry-after"]) <= 3600
        cell = await client.post(
            f"/v1/sessions/{session.json()['id']}/cells", json={"code": "1"}, headers=team
        )
        assert_quota(cell, "cpu_seconds_per_hour", 1, 1.5)
        metrics = daemon.metrics.render().decode()
        assert 'ai_data_agent_tenant_cpu_seconds_total{tenant="team-a"} 1.5' in metrics
        assert 'refusals_total{quota="cpu_seconds_per_hour",tenant="team-a"} 2.0' in metrics


async def test_a_runs_cpu_seconds_are_charged_as_it_ends_and_the_next_run_is_refused(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path)
    team = tenant_token(tmp_path, "team-a", cpu_seconds_per_hour=1)
    async with running_service(settings) as service:
        client = service.client
        first = await client.post("/v1/runs?wait=true", json={"code": "cpu 0.6"}, headers=team)
        assert first.json()["cpu_seconds"] == 0.6
        second = await client.post("/v1/runs?wait=true", json={"code": "cpu 0.6"}, headers=team)
        assert second.status_code == 200, second.text  # 0.6 < 1 when it was admitted
        refused = await client.post("/v1/runs?wait=true", json={"code": "x"}, headers=team)
        assert_quota(refused, "cpu_seconds_per_hour", 1, 1.2)
        metrics = (await client.get("/metrics")).text
        assert 'ai_data_agent_runs_rejected_total{reason="quota_exceeded"} 1.0' in metrics
        assert 'ai_data_agent_tenant_cpu_seconds_total{tenant="team-a"} 1.2' in metrics
        admin = await client.post("/v1/runs?wait=true", json={"code": "cpu 5"})
        assert admin.status_code == 200  # no quota: charged, never refused
