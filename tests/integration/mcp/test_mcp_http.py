"""The daemon's /mcp over the network: tokens, Host, progress, cancel, and hostile code."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from tests.support.daemon import Daemon

from .conftest import CLI, ENDED_SESSION_ANSWERS, ended_session_answers

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def text_of(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


@asynccontextmanager
async def connect(daemon: Daemon, token: str | None = None) -> AsyncIterator[Client]:
    timeout = httpx2.Timeout(30, read=300)
    headers = {"Authorization": f"Bearer {daemon.token if token is None else token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        Client(streamable_http_client(f"{daemon.url}/mcp", http_client=http)) as client,
    ):
        yield client


def test_tokens_and_hosts(mcp_daemon: Daemon) -> None:
    url = f"{mcp_daemon.url}/mcp"
    good = {**HEADERS, "Authorization": f"Bearer {mcp_daemon.token}"}
    assert httpx.post(url, json=LIST, headers=good).status_code == 200
    for headers in (HEADERS, {**HEADERS, "Authorization": "Bearer wrong"}):
        refused = httpx.post(url, json=LIST, headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Bearer realm="ai-data-agent"'
    foreign = httpx.post(url, json=LIST, headers={**good, "Host": "rebound.example:8000"})
    assert foreign.status_code == 421


async def _cell(client: Client, session_id: str, code: str, **kw: Any) -> CallToolResult:
    return await client.call_tool("run_python", {"code": code, "session_id": session_id}, **kw)


async def test_progress_during_a_cell_and_cancel_keeps_the_state(mcp_daemon: Daemon) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, total, message))

    async with connect(mcp_daemon) as client:
        session_id = text_of(await client.call_tool("create_session", {})).split()[1]
        code = "x = 7\nimport time\nfor i in range(3):\n    print('step', i, flush=True)\n    time.sleep(1)"
        done = await _cell(client, session_id, code, progress_callback=on_progress)
        assert not done.is_error, text_of(done)
        assert len(seen) >= 2, seen
        assert any("step" in (message or "") for _, _, message in seen), seen

        started = time.monotonic()
        with anyio.move_on_after(2):
            await _cell(client, session_id, "import time\ntime.sleep(60)")
        cell = mcp_daemon.client().get(f"/v1/sessions/{session_id}/cells/2")
        deadline = time.monotonic() + 15
        while cell.status_code == 202 and time.monotonic() < deadline:
            await anyio.sleep(0.2)
            cell = mcp_daemon.client().get(f"/v1/sessions/{session_id}/cells/2")
        assert cell.json()["status"] == "interrupted", cell.text
        assert cell.json()["state"] == "preserved"
        assert time.monotonic() - started < 15
        after = await _cell(client, session_id, "x * 6")
        assert "--- value ---\n42" in text_of(after)
        assert await ended_session_answers(client, session_id) == ENDED_SESSION_ANSWERS


HOSTILE = {
    "busy loop": ("while True:\n    pass", {"timeout_s": 2}, "timed_out"),
    "memory bomb": (
        "b = []\nwhile True:\n    b.append(bytearray(50 * 2**20))",
        {},
        "memory_exceeded",
    ),
    "output flood": (
        "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)",
        {"timeout_s": 3},
        None,
    ),
    "controller secrets": ("import os\nprint(sorted(os.environ.items()))", {}, "succeeded"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_code_ends_as_through_the_api(mcp_daemon: Daemon, name: str) -> None:
    code, limits, expected = HOSTILE[name]
    api = mcp_daemon.client().post("/v1/runs", json={"code": code, **limits}, timeout=120)
    assert api.status_code == 200, api.text
    async with connect(mcp_daemon) as client:
        result = await client.call_tool("run_python", {"code": code, **limits})
    text = text_of(result)
    status = text.split()[1].rstrip(";")
    assert status == api.json()["status"], text[:500]
    if expected is not None:
        assert status == expected
    assert result.is_error == (status != "succeeded")
    assert mcp_daemon.token not in text and "API_TOKENS" not in text  # nothing of the daemon's env
    assert "ai_data_agent/" not in text  # no traceback of the controller's own code


async def test_a_one_shot_run_shows_its_last_expressions_value(mcp_daemon: Daemon) -> None:
    async with connect(mcp_daemon) as client:
        result = await client.call_tool("run_python", {"code": "x = 6\nprint('six')\nx * 7"})
    assert not result.is_error, text_of(result)
    assert "--- stdout ---\nsix\n--- value ---\n42" in text_of(result)


async def test_stdio_through_a_daemon(mcp_daemon: Daemon, tmp_path: Any) -> None:
    """`ai-data-agent mcp --server URL`: the default session lives on the daemon."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_DATA_AGENT_")}
    env["AI_DATA_AGENT_TOKEN"] = mcp_daemon.token
    args = ["mcp", "--server", mcp_daemon.url]
    params = StdioServerParameters(command=CLI, args=args, env=env, cwd=str(tmp_path))
    async with Client(params, read_timeout_seconds=120) as client:
        first = await client.call_tool("run_python", {"code": "n = 20\nprint('remote')"})
        assert not first.is_error and "remote" in text_of(first), text_of(first)
        second = await client.call_tool("run_python", {"code": "n + 1"})
        assert "--- value ---\n21" in text_of(second)
        session_id = text_of(second).split()[3].rstrip(",")
        live = mcp_daemon.client().get(f"/v1/sessions/{session_id}").json()
        assert live["status"] == "idle" and live["execution_count"] == 2
        assert await ended_session_answers(client, session_id) == ENDED_SESSION_ANSWERS
    closed = mcp_daemon.client().get(f"/v1/sessions/{session_id}").json()
    assert closed["status"] == "closed"  # the process ended: its default session too


async def test_a_paused_session_resumes_on_run_python_and_forks(mcp_daemon: Daemon) -> None:
    async with connect(mcp_daemon) as client:
        session_id = text_of(await client.call_tool("create_session", {})).split()[1]
        await _cell(client, session_id, "x = 6\nimport socket\nconn = socket.socket()")
        paused = mcp_daemon.client().post(f"/v1/sessions/{session_id}/pause")
        assert paused.json()["status"] == "paused", paused.text
        text = text_of(await _cell(client, session_id, "x * 7"))
        assert "state restored" in text and "resumed from checkpoint 1" in text
        assert "conn (socket" in text and "--- value ---\n42" in text
        fork = text_of(await client.call_tool("fork_session", {"session_id": session_id}))
        fork_id = fork.split()[2].rstrip(",")
        assert fork.startswith(f"new session {fork_id}, forked from {session_id}")
        assert "--- value ---\n42" in text_of(await _cell(client, fork_id, "x * 7"))
        for sid in (fork_id, session_id):
            await client.call_tool("close_session", {"session_id": sid})
