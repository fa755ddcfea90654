"""The sessions API in-process: the real daemon app and executor over a local-process backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fakes import FakeBackend
from service_fakes import TOKEN, assert_error, make_settings

from ai_data_agent.executor.core import Executor
from ai_data_agent.service import create_app
from ai_data_agent.service.daemon import Daemon
from ai_data_agent.session_models import SessionStatus

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def daemon(
    tmp_path: Path, sandbox_tmp: Path, **settings: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Daemon]]:
    values = {"max_sessions": 2, "interrupt_grace_s": 0.5, "memory_budget_mb": 0, **settings}
    config = make_settings(tmp_path / "data", **values)
    executor = Executor(config, backend=FakeBackend(sandbox_tmp, emulate_isolation=True))
    app = create_app(config, executor)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://d", headers=headers
        ) as client:
            yield client, app.state.daemon


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_session_over_http(tmp_path: Path, sandbox_tmp: Path) -> None:
    async with daemon(tmp_path, sandbox_tmp) as (client, _):
        created = await client.post("/v1/sessions", json={})
        assert created.status_code == 201, created.text
        session = created.json()
        assert session["status"] == "idle" and session["generation"] == 1
        sid = session["id"]
        first = await client.post(f"/v1/sessions/{sid}/cells", json={"code": "x = 20\nprint('hi')"})
        assert first.json()["stdout"] == "hi\n"
        second = await client.post(f"/v1/sessions/{sid}/cells", json={"code": "x * 2 + 2"})
        body = second.json()
        assert (body["execution_count"], body["result"]["data"]) == (2, {"text/plain": "42"})
        stored = await client.get(f"/v1/sessions/{sid}/cells/2")
        assert stored.json() == body
        info = (await client.get(f"/v1/sessions/{sid}")).json()
        assert info["execution_count"] == 2
        listed = (await client.get("/v1/sessions")).json()["items"]
        assert [s["id"] for s in listed] == [sid]


async def test_busy_gone_and_not_found(tmp_path: Path, sandbox_tmp: Path) -> None:
    async with daemon(tmp_path, sandbox_tmp) as (client, _):
        sid = (await client.post("/v1/sessions", json={})).json()["id"]
        accepted = await client.post(
            f"/v1/sessions/{sid}/cells",
            json={"code": "import time; time.sleep(1.5)", "wait": False},
        )
        assert accepted.status_code == 202
        assert accepted.headers["location"] == f"/v1/sessions/{sid}/cells/1"
        busy = await client.post(f"/v1/sessions/{sid}/cells", json={"code": "1"})
        assert_error(busy, 409, "session_busy")
        running = await client.get(f"/v1/sessions/{sid}/cells/1")
        assert running.status_code == 202
        assert (await client.post(f"/v1/sessions/{sid}/interrupt")).json() == {"interrupted": True}
        for _ in range(100):
            done = await client.get(f"/v1/sessions/{sid}/cells/1")
            if done.status_code == 200:
                break
            await anyio.sleep(0.05)
        assert done.json()["status"] == "interrupted"
        closed = await client.delete(f"/v1/sessions/{sid}")
        assert closed.json()["status"] == "closed"
        assert_error(
            await client.post(f"/v1/sessions/{sid}/cells", json={"code": "1"}), 410, "session_gone"
        )
        assert_error(await client.get("/v1/sessions/nope"), 404, "not_found")
        assert_error(
            await client.post("/v1/sessions/nope/cells", json={"code": "1"}), 404, "not_found"
        )


async def test_the_session_limit_is_429(tmp_path: Path, sandbox_tmp: Path) -> None:
    async with daemon(tmp_path, sandbox_tmp, max_sessions=1) as (client, _):
        assert (await client.post("/v1/sessions", json={})).status_code == 201
        refused = await client.post("/v1/sessions", json={})
        message = assert_error(refused, 429, "session_limit")
        assert "1 sessions live" in message and refused.headers["retry-after"]


async def test_the_memory_budget_counts_sessions_and_runs(
    tmp_path: Path, sandbox_tmp: Path
) -> None:
    settings = {"memory_budget_mb": 3000, "max_concurrent_runs": 1, "default_memory_mb": 1024}
    async with daemon(tmp_path, sandbox_tmp, session_default_memory_mb=1024, **settings) as (
        client,
        _,
    ):
        assert (await client.post("/v1/sessions", json={})).status_code == 201
        refused = await client.post("/v1/sessions", json={})
        assert "budget" in assert_error(refused, 429, "session_limit")


async def test_files_put_list_get(tmp_path: Path, sandbox_tmp: Path) -> None:
    async with daemon(tmp_path, sandbox_tmp) as (client, _):
        sid = (await client.post("/v1/sessions", json={})).json()["id"]
        put = await client.put(f"/v1/sessions/{sid}/files/data/a.csv", content=b"a,b\n1,2\n")
        assert put.status_code == 201 and put.json()["path"] == "data/a.csv"
        listing = (await client.get(f"/v1/sessions/{sid}/files")).json()
        assert [(f["path"], f["size"]) for f in listing] == [("data/a.csv", 8)]
        got = await client.get(f"/v1/sessions/{sid}/files/data/a.csv")
        assert got.content == b"a,b\n1,2\n" and got.headers["content-type"].startswith("text/csv")
        missing = await client.get(f"/v1/sessions/{sid}/files/data/missing.csv")
        assert_error(missing, 404, "file_not_found")
        assert "data/missing.csv" in missing.json()["error"]["message"]
        assert_error(await client.get(f"/v1/sessions/{sid}/files/data"), 400, "invalid_request")


async def test_a_session_file_past_the_json_cap_uploads_as_octet_stream(
    tmp_path: Path, sandbox_tmp: Path
) -> None:
    """A file within the input file cap uploads as docs/sessions.md shows it; without the
    Content-Type, the 413 says which one this route takes (it takes no multipart)."""
    caps = {"max_body_bytes": 4096, "max_input_file_bytes": 64 * 1024}
    data = b"x" * (64 * 1024)  # at the input file cap, 16 times the JSON cap
    async with daemon(tmp_path, sandbox_tmp, **caps) as (client, _):
        sid = (await client.post("/v1/sessions", json={})).json()["id"]
        url = f"/v1/sessions/{sid}/files/data/big.bin"
        bare = await client.put(url, content=data, headers={"Content-Type": ""})
        message = assert_error(bare, 413, "payload_too_large")
        assert "Content-Type: application/octet-stream" in message
        assert "multipart" not in message
        sent = await client.put(
            url, content=data, headers={"Content-Type": "application/octet-stream"}
        )
        assert sent.status_code == 201, sent.text
        assert sent.json()["size"] == len(data)


async def test_cell_events_stream_output_and_the_result(tmp_path: Path, sandbox_tmp: Path) -> None:
    async with daemon(tmp_path, sandbox_tmp) as (client, _):
        sid = (await client.post("/v1/sessions", json={})).json()["id"]
        await client.post(f"/v1/sessions/{sid}/cells", json={"code": "print('a'); display(7); 8"})
        events = await client.get(f"/v1/sessions/{sid}/cells/1/events")
        names = [
            line.split(": ", 1)[1]
            for line in events.text.splitlines()
            if line.startswith("event: ")
        ]
        # A finished cell: from its record, output and rich outputs included.
        assert names == ["status", "stdout", "display", "result"]


async def test_idle_sessions_expire_and_their_calls_are_gone(
    tmp_path: Path, sandbox_tmp: Path
) -> None:
    async with daemon(tmp_path, sandbox_tmp, session_idle_action="expire") as (client, d):
        sid = (await client.post("/v1/sessions", json={})).json()["id"]
        later = datetime.now(UTC) + timedelta(seconds=d.settings.session_idle_timeout_s + 1)
        assert await anyio.to_thread.run_sync(d.sessions.manager.expire, later) == [sid]
        info = (await client.get(f"/v1/sessions/{sid}")).json()
        assert (info["status"], info["error"]) == ("expired", "idle timeout")
        assert_error(
            await client.post(f"/v1/sessions/{sid}/cells", json={"code": "1"}), 410, "session_gone"
        )


async def test_a_restart_of_the_daemon_marks_live_sessions_lost(
    tmp_path: Path, sandbox_tmp: Path
) -> None:
    async with daemon(tmp_path, sandbox_tmp) as (client, d):
        sid = (await client.post("/v1/sessions", json={})).json()["id"]
        info = d.sessions.get(sid)
        assert info is not None
        # As if the process had died with the session busy: its record says busy.
        d.sessions.manager._live.pop(sid).session.close(SessionStatus.LOST)
        d.sessions.manager.store.put(info.model_copy(update={"status": SessionStatus.BUSY}))
    async with daemon(tmp_path, sandbox_tmp) as (client, _):
        info = (await client.get(f"/v1/sessions/{sid}")).json()
        assert info["status"] == "lost" and "next start" in info["error"]


async def test_a_paused_session_resumes_at_its_next_cell_and_says_so(
    tmp_path: Path, sandbox_tmp: Path
) -> None:
    async with daemon(tmp_path, sandbox_tmp) as (client, d):
        sid = (await client.post("/v1/sessions", json={})).json()["id"]
        await client.post(
            f"/v1/sessions/{sid}/cells", json={"code": "x = 41\nimport socket\ns = socket.socket()"}
        )
        paused = await client.post(f"/v1/sessions/{sid}/pause")
        assert paused.status_code == 200, paused.text
        assert (paused.json()["status"], paused.json()["checkpoint"]) == ("paused", 1)
        assert d.sessions.manager.live_count == 0
        cell = (await client.post(f"/v1/sessions/{sid}/cells", json={"code": "x + 1"})).json()
        assert (cell["state"], cell["result"]["data"]["text/plain"]) == ("restored", "42")
        assert cell["restore"]["execution_count"] == 1 and cell["execution_count"] == 2
        assert [v["name"] for v in cell["restore"]["lost"]] == ["s"]
        listed = (await client.get(f"/v1/sessions/{sid}/checkpoints")).json()["items"]
        assert [c["seq"] for c in listed] == [1]
        resumed = (await client.post(f"/v1/sessions/{sid}/resume")).json()
        assert resumed["state"] == "preserved"
