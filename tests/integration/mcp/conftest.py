"""Fixtures of the MCP integration tests: the real engine, the real daemon, the SDK's client.

    async with stdio_client() as client:            # `ai-data-agent mcp` as a subprocess
        await client.call_tool("run_python", {"code": "print(1)"})
    daemon = mcp_daemon                              # a daemon with sessions, /mcp and a token

Sessions install through the environment cache (uv), so both use
``install_mode=cache`` over the suite's settings.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import docker
import pytest
from mcp import Client, StdioServerParameters
from mcp_types import TextContent

from ai_data_agent.executor.spec import LABEL_MANAGED
from tests.support.daemon import Daemon

SESSION_SETTINGS = {
    "install_mode": "cache",
    "installer": "uv",
    "interrupt_grace_s": 1.0,
    "session_default_memory_mb": 256,
    "session_max_memory_mb": 512,
}
CLI = str(Path(sys.executable).with_name("ai-data-agent"))
CLOSED = "session S is closed; its container is removed"
GONE = "error (session_gone): session S is closed"
# What the tools answer once a session is closed, over stdio (local or a daemon) and /mcp.
ENDED_SESSION_ANSWERS = [(False, CLOSED), (False, CLOSED), (True, GONE), (True, GONE)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def settings_env(settings_kwargs: dict[str, Any], **overrides: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_DATA_AGENT_")}
    for name, value in {**settings_kwargs, **SESSION_SETTINGS, **overrides}.items():
        if value is not None:
            env[f"AI_DATA_AGENT_{name.upper()}"] = str(value)
    env["LOG_LEVEL"] = "INFO"
    return env


@pytest.fixture
def stdio_client(settings_kwargs: dict[str, Any], tmp_path: Path) -> Any:
    """`ai-data-agent mcp` on the local engine, through the SDK's stdio client."""
    env = settings_env(settings_kwargs, data_dir=tmp_path)

    @asynccontextmanager
    async def connect() -> Any:
        params = StdioServerParameters(command=CLI, args=["mcp"], env=env, cwd=str(tmp_path))
        async with Client(params, read_timeout_seconds=240) as client:
            yield client

    return connect


@pytest.fixture
def mcp_daemon(start_daemon: Callable[..., Daemon]) -> Daemon:
    return start_daemon(**SESSION_SETTINGS)


def managed_containers(docker_client: docker.DockerClient, name: str) -> list[str]:
    """Managed containers whose labels mention ``name`` (a session or run id)."""
    found = docker_client.containers.list(all=True, filters={"label": LABEL_MANAGED}, sparse=True)
    return [c.short_id for c in found if name in " ".join((c.attrs.get("Labels") or {}).values())]


async def ended_session_answers(client: Client, session_id: str) -> list[tuple[bool, str]]:
    """Close the session twice, then call it: each answer's ``is_error`` and text (id: S)."""
    answers = []
    calls = [("close_session", {}), ("close_session", {}), ("run_python", {"code": "1"})]
    for name, arguments in [*calls, ("list_files", {})]:
        result = await client.call_tool(name, {"session_id": session_id, **arguments})
        block = result.content[0]
        assert isinstance(block, TextContent)
        answers.append((result.is_error, block.text.replace(session_id, "S")))
    return answers
