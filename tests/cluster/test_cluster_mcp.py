"""/mcp on a cluster's API node: runs and sessions go through PostgreSQL to a worker."""

from __future__ import annotations

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, ImageContent, TextContent

from tests.support.engines import PrivateEngine

from .nodes import TOKEN, Cluster

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.integration,
    pytest.mark.anyio,
    pytest.mark.filterwarnings(r"ignore:unclosed <socket\.socket:ResourceWarning"),
]

# A valid 1x1 PNG: the run leaves it in outputs/, the tool returns it as an image.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def text_of(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


async def test_mcp_on_an_api_node_runs_on_a_worker(
    cluster: Cluster, engines: list[PrivateEngine]
) -> None:
    api = cluster.api()
    cluster.worker(engines[0])
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http,
        Client(streamable_http_client(f"{api.url}/mcp", http_client=http)) as client,
    ):
        code = f"open('outputs/dot.png', 'wb').write(bytes.fromhex({PNG.hex()!r}))\nprint('drawn')"
        run = await client.call_tool("run_python", {"code": code})
        assert not run.is_error, text_of(run)
        assert "drawn" in text_of(run)
        images = [b for b in run.content if isinstance(b, ImageContent)]
        assert len(images) == 1  # the artifact, read back from the database

        created = await client.call_tool("create_session", {})
        session_id = text_of(created).split()[1]
        first = await client.call_tool("run_python", {"code": "x = 20", "session_id": session_id})
        assert not first.is_error, text_of(first)
        second = await client.call_tool("run_python", {"code": "x + 1", "session_id": session_id})
        assert "--- value ---\n21" in text_of(second)
        await client.call_tool("close_session", {"session_id": session_id})
    with api.client() as http_client:
        runs = http_client.get("/v1/runs").json()["items"]
    assert [r["status"] for r in runs] == ["succeeded"]  # recorded like any run
