"""``ai-data-agent mcp`` as an agent host runs it: a subprocess on stdio, the real engine."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import docker
import pytest
from mcp_types import CallToolResult, ImageContent, TextContent

from ..test_sessions import png_size
from .conftest import (
    CLI,
    ENDED_SESSION_ANSWERS,
    ended_session_answers,
    managed_containers,
    settings_env,
)

pytestmark = [pytest.mark.integration]
INITIALIZE = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "test", "version": "1"},
}
PLOT = (
    "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
    "print('plotting')\nplt.plot([1, 3, 2])\nplt.title('sales')"
)


def text_of(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


@pytest.mark.anyio
async def test_print_plot_state_install_and_files(
    stdio_client: Any, docker_client: docker.DockerClient
) -> None:
    async with stdio_client() as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"run_python", "create_session", "read_file"} <= tools

        plot = await client.call_tool("run_python", {"code": PLOT, "requirements": ["matplotlib"]})
        assert not plot.is_error, text_of(plot)
        assert "plotting" in text_of(plot)
        default_id = text_of(plot).split()[3].rstrip(",")  # "status: ...; session ID, cell 1"
        images = [b for b in plot.content if isinstance(b, ImageContent)]
        assert images, text_of(plot)
        width, height = png_size(base64.b64decode(images[0].data))
        assert width > 100 and height > 100

        created = await client.call_tool("create_session", {"requirements": ["six"]})
        session_id = text_of(created).split()[1]
        assert "six" in text_of(created)
        await client.call_tool("run_python", {"code": "total = 40", "session_id": session_id})
        again = await client.call_tool(
            "run_python", {"code": "import six\ntotal + 2", "session_id": session_id}
        )
        assert not again.is_error and "--- value ---\n42" in text_of(again)

        csv = "region,units\nnorth,3\nsouth,5\n"
        await client.call_tool(
            "upload_file", {"session_id": session_id, "path": "data/s.csv", "text": csv}
        )
        wrote = await client.call_tool(
            "run_python",
            {
                "session_id": session_id,
                "code": "open('outputs/copy.csv', 'w').write(open('data/s.csv').read().upper())",
            },
        )
        assert "outputs/copy.csv" in text_of(wrote)
        read = await client.call_tool(
            "read_file", {"session_id": session_id, "path": "outputs/copy.csv"}
        )
        assert "REGION,UNITS\nNORTH,3" in text_of(read)
        resource = await client.read_resource(
            f"ai-data-agent://sessions/{session_id}/files/data/s.csv"
        )
        assert base64.b64decode(resource.contents[0].blob).decode() == csv  # type: ignore[union-attr]

        failed = await client.call_tool("run_python", {"code": "{}['missing']"})
        assert failed.is_error and "KeyError: 'missing'" in text_of(failed)
        assert "Traceback (most recent call last):\n  File" in text_of(failed)  # no blank line
        assert await ended_session_answers(client, session_id) == ENDED_SESSION_ANSWERS
    # The process ended: its default session and the one it created are gone.
    assert managed_containers(docker_client, session_id) == []
    assert managed_containers(docker_client, default_id) == []


def test_stop_signals_during_the_cleanup_wait_for_the_containers_removal(
    settings_kwargs: dict[str, Any], tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    # An agent host closes stdin, then signals (the SDK: SIGTERM after 2 s); one in a
    # hurry signals at once, twice. The process still removes its containers first.
    env = settings_env(settings_kwargs, data_dir=tmp_path)
    command = [CLI, "mcp"]
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=tmp_path
    ) as server:
        try:
            session_id = _create_session(server)
            assert managed_containers(docker_client, session_id)

            server.stdin.close()  # type: ignore[union-attr]
            server.send_signal(signal.SIGTERM)
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=60) == 0
            assert managed_containers(docker_client, session_id) == []
        finally:
            server.kill()


def _create_session(server: subprocess.Popen[bytes]) -> str:
    """Speak JSON-RPC by hand: initialize, then call create_session; its id."""
    assert server.stdin is not None and server.stdout is not None
    calls = [
        {"method": "initialize", "params": INITIALIZE, "id": 1},
        {"method": "notifications/initialized"},
        {
            "method": "tools/call",
            "params": {"name": "create_session", "arguments": {}},
            "id": 2,
        },
    ]
    reply: dict[str, Any] = {}
    for call in calls:
        server.stdin.write(json.dumps({"jsonrpc": "2.0", **call}).encode() + b"\n")
        server.stdin.flush()
        if "id" in call:
            reply = json.loads(server.stdout.readline())
            assert "error" not in reply, reply
    return str(reply["result"]["content"][0]["text"].split()[1])
