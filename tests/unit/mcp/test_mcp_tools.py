"""The MCP tools through the SDK's own client, in process, over a sandbox in memory."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_fakes import SECRET, FakeSandbox, tiny_png
from mcp_types import CallToolResult, ImageContent, ResourceLink, TextContent

from ai_data_agent.mcp import progress
from ai_data_agent.mcp.server import build_server
from ai_data_agent.mcp.tools import SandboxTools, ToolOptions

pytestmark = pytest.mark.anyio

TOOLS = {
    "run_python",
    "create_session",
    "install_packages",
    "upload_file",
    "list_files",
    "read_file",
    "restart_session",
    "fork_session",
    "close_session",
    "list_datasets",
    "describe_dataset",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Harness:
    def __init__(self, sandbox: FakeSandbox, client: Client, tools: SandboxTools) -> None:
        self.sandbox = sandbox
        self.client = client
        self.tools = tools

    async def call(self, name: str, **arguments: Any) -> CallToolResult:
        return await self.client.call_tool(name, arguments)


async def _harness(default_session: bool, max_images: int = 4) -> AsyncIterator[Harness]:
    sandbox = FakeSandbox()
    options = ToolOptions(
        default_session=default_session, max_images=max_images, cell_timeout_s=45.0
    )
    server, tools = build_server(sandbox, options)
    async with Client(server) as client:
        yield Harness(sandbox, client, tools)


@pytest.fixture
async def http_tools() -> AsyncIterator[Harness]:
    async for harness in _harness(default_session=False):
        yield harness


@pytest.fixture
async def stdio_tools() -> AsyncIterator[Harness]:
    async for harness in _harness(default_session=True, max_images=2):
        yield harness


def text_of(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


async def test_tool_list_schemas_and_annotations(http_tools: Harness) -> None:
    tools = {tool.name: tool for tool in (await http_tools.client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 40, tool.name
        assert tool.annotations is not None and tool.annotations.title
    run = tools["run_python"]
    assert run.input_schema["required"] == ["code"]
    assert set(run.input_schema["properties"]) == {
        "code",
        "requirements",
        "files",
        "timeout_s",
        "session_id",
        "datasets",
    }
    assert run.input_schema["properties"]["code"]["description"]
    hints = {name: tool.annotations for name, tool in tools.items()}
    assert hints["run_python"].open_world_hint is False  # the server allows no network
    assert hints["list_files"].read_only_hint and hints["read_file"].read_only_hint
    assert hints["list_datasets"].read_only_hint and hints["describe_dataset"].read_only_hint
    assert not hints["run_python"].read_only_hint
    assert hints["close_session"].destructive_hint and hints["restart_session"].destructive_hint
    assert hints["install_packages"].idempotent_hint and not hints["run_python"].idempotent_hint
    upload = tools["upload_file"].input_schema
    assert set(upload["properties"]) == {"path", "text", "base64", "session_id"}
    assert upload["required"] == ["path"]


async def test_a_failing_cell_is_an_error_with_its_traceback(http_tools: Harness) -> None:
    session = text_of(await http_tools.call("create_session"))
    session_id = session.split()[1]
    result = await http_tools.call("run_python", code="1/0", session_id=session_id)
    assert result.is_error
    text = text_of(result)
    assert text.startswith("status: error")
    trace = (
        "Traceback (most recent call last):\n"
        '  File "<cell 1>", line 1, in <module>\n    1/0\n    ~^~\n'
        "ZeroDivisionError: division by zero"
    )
    assert trace in text  # as Python prints it: no blank line between its lines


async def test_a_fork_names_the_new_session_and_what_it_did_not_carry_over(
    http_tools: Harness,
) -> None:
    session_id = text_of(await http_tools.call("create_session")).split()[1]
    text = text_of(await http_tools.call("fork_session", session_id=session_id))
    assert text.startswith(f"new session s2, forked from {session_id}")
    assert "(it starts from checkpoint 1, after cell 0: 1 variable(s) back" in text
    assert "sock (socket: TypeError: cannot pickle)" in text


async def test_a_one_shot_run_returns_output_and_figures(http_tools: Harness) -> None:
    result = await http_tools.call(
        "run_python", code="print(1)", files=[{"path": "a.txt", "text": "x"}]
    )
    assert not result.is_error
    assert "ran print(1)" in text_of(result)
    images = [b for b in result.content if isinstance(b, ImageContent)]
    assert [base64.b64decode(i.data) for i in images] == [tiny_png()]
    links = [b for b in result.content if isinstance(b, ResourceLink)]
    assert [str(link.uri) for link in links] == ["ai-data-agent://runs/run1/artifacts/figure_1.png"]
    assert "--- files ---\noutputs/figure_1.png (" in text_of(result)
    assert "--- value ---\n'print(1)'" in text_of(result)  # the last expression's, as in a cell
    (request,) = http_tools.sandbox.runs
    assert request.timeout_s == 45.0  # the MCP default, under clients' 60 s
    assert [(f.path, f.data) for f in request.files] == [("a.txt", b"x")]


async def test_service_errors_are_results_and_nothing_internal_leaks(http_tools: Harness) -> None:
    session_id = text_of(await http_tools.call("create_session")).split()[1]
    busy = await http_tools.call("run_python", code="busy", session_id=session_id)
    assert busy.is_error and "session_busy" in text_of(busy)
    crash = await http_tools.call("run_python", code="crash", session_id=session_id)
    assert crash.is_error
    assert SECRET not in text_of(crash) and "Traceback" not in text_of(crash)
    gone = await http_tools.call("list_files", session_id="nope")
    assert gone.is_error and "session_gone" in text_of(gone)
    unknown = await http_tools.call("close_session", session_id="nope")
    assert unknown.is_error
    assert text_of(unknown) == "error (session_gone): session nope is unknown"
    bad = await http_tools.call("upload_file", session_id=session_id, path="a.txt")
    assert bad.is_error and "exactly one of text and base64" in text_of(bad)


async def test_over_http_the_session_tools_need_a_session_id(http_tools: Harness) -> None:
    result = await http_tools.call("install_packages", requirements=["six"])
    assert result.is_error and "session_id" in text_of(result)
    assert http_tools.sandbox.sessions == {}


async def test_over_stdio_calls_share_a_default_session_closed_at_exit(
    stdio_tools: Harness,
) -> None:
    first = await stdio_tools.call("run_python", code="a = 1", requirements=["six"])
    second = await stdio_tools.call("run_python", code="a")
    assert not first.is_error and not second.is_error
    assert stdio_tools.sandbox.sessions == {"s1": ["a = 1", "a"]}
    upload = await stdio_tools.call("upload_file", path="d/x.csv", text="1,2\n")
    assert "wrote d/x.csv" in text_of(upload)
    read = await stdio_tools.call("read_file", path="d/x.csv")
    assert "1,2" in text_of(read)
    await stdio_tools.tools.close_default()
    assert stdio_tools.sandbox.closed == ["s1"]


async def test_images_are_capped_and_counted(stdio_tools: Harness) -> None:
    result = await stdio_tools.call("run_python", code="png")
    images = [b for b in result.content if isinstance(b, ImageContent)]
    assert len(images) == 2  # of three; max_images is 2 here
    assert all(base64.b64decode(i.data) == tiny_png() for i in images)
    assert "1 more image(s) not shown" in text_of(result)


async def test_progress_while_a_cell_runs_and_cancel_interrupts_it(
    stdio_tools: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "EVERY_S", 0.05)
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, total, message))

    with anyio.move_on_after(0.5):
        await stdio_tools.client.call_tool(
            "run_python", {"code": "sleep", "timeout_s": 30}, progress_callback=on_progress
        )
    assert seen, "no progress notification while the cell ran"
    assert seen[-1][1] == 30 and "running sleep" in (seen[-1][2] or "")
    await anyio.sleep(0.1)
    (job,) = stdio_tools.sandbox.jobs
    assert job.cancelled, "the cancelled call did not interrupt its cell"


async def test_runs_and_cells_name_their_files_by_the_path_in_the_working_directory(
    http_tools: Harness,
) -> None:
    session_id = text_of(await http_tools.call("create_session")).split()[1]
    cell = await http_tools.call("run_python", code="write", session_id=session_id)
    run = await http_tools.call("run_python", code="write")
    named = [
        [(b.name, str(b.uri)) for b in result.content if isinstance(b, ResourceLink)]
        for result in (cell, run)
    ]
    assert named == [
        [
            (
                "outputs/figure_1.png",
                f"ai-data-agent://sessions/{session_id}/files/outputs/figure_1.png",
            )
        ],
        [("outputs/figure_1.png", "ai-data-agent://runs/run1/artifacts/figure_1.png")],
    ]
    for result in (cell, run):
        assert "--- files ---\noutputs/figure_1.png (" in text_of(result)
