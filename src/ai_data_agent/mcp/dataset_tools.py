"""The MCP tools of datasets: what data there is, and what is inside it, without loading it.

    DatasetTools(sandbox).register(server)       # list_datasets, describe_dataset

A model lists the datasets it may mount (``datasets`` of run_python and
create_session) and reads a description of one (columns, types, row counts
and the first rows of its tabular files, computed by the daemon in a
sandbox), then writes code against ``/data/<name>/...``. Text only: the
description is short by construction (capped), so it fits a model's context.
"""

from __future__ import annotations

import json
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from ai_data_agent.dataset_models import DatasetDescription, DatasetPage
from ai_data_agent.mcp import descriptions as doc
from ai_data_agent.mcp.results import tool_result
from ai_data_agent.mcp.sandbox import SandboxService
from ai_data_agent.mcp.tools import guard

__all__ = ["DatasetTools", "description_text", "page_text"]


def page_text(page: DatasetPage) -> str:
    if not page.items:
        return "no datasets yet (a person uploads them: `ai-data-agent dataset put NAME PATH`)"
    lines = [
        f"{d.name}\tlatest version {d.latest} ({d.versions} in all)\t{d.size} bytes"
        for d in page.items
    ]
    return "datasets (mount with datasets=['name'] or ['name@version'], at /data/<name>):\n" + (
        "\n".join(lines)
    )


def description_text(description: DatasetDescription) -> str:
    head = f"{description.name}@{description.version}, mounted at /data/{description.name}:"
    lines = [head]
    for item in description.files:
        rows = "?" if item.rows is None else item.rows
        lines.append(f"\n{item.path} ({item.format}, {item.size} bytes, {rows} rows)")
        if item.error:
            lines.append(f"  unreadable: {item.error}")
        if item.columns:
            lines.append("  columns: " + ", ".join(f"{c.name} ({c.type})" for c in item.columns))
        lines += [f"  note: {note}" for note in item.notes]
        lines += [f"  row: {json.dumps(row)}" for row in item.first_rows]
    if description.other_files:
        lines.append(f"\n{description.other_files} other file(s), not tabular")
    if description.truncated:
        lines.append("(cut to fit: more files or rows than shown)")
    return "\n".join(lines)


class DatasetTools:
    def __init__(self, sandbox: SandboxService) -> None:
        self.sandbox = sandbox

    async def list_datasets(self) -> CallToolResult:
        async def call() -> CallToolResult:
            return tool_result(page_text(await self.sandbox.datasets()))

        return await guard(call)

    async def describe_dataset(
        self,
        name: Annotated[str, Field(description=doc.DATASET_NAME)],
        version: Annotated[int | None, Field(ge=1, description=doc.DATASET_VERSION)] = None,
    ) -> CallToolResult:
        async def call() -> CallToolResult:
            described = await self.sandbox.describe_dataset(name, version)
            return tool_result(description_text(described))

        return await guard(call)

    def register(self, server: MCPServer) -> None:
        hints = {
            "list_datasets": ToolAnnotations(title="List datasets", read_only_hint=True),
            "describe_dataset": ToolAnnotations(
                title="Describe a dataset", read_only_hint=True, idempotent_hint=True
            ),
        }
        for function, description in (
            (self.list_datasets, doc.LIST_DATASETS),
            (self.describe_dataset, doc.DESCRIBE_DATASET),
        ):
            annotations = hints[function.__name__]
            server.add_tool(
                function,
                description=description,
                title=annotations.title,
                annotations=annotations,
                structured_output=False,
            )
