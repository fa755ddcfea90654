"""A scripted "agent" (no LLM) that analyses the sample sales data through the MCP server.

    make example-mcp                      # or: .venv/bin/python examples/mcp_agent.py

It starts ``ai-data-agent mcp`` as an agent host would (a subprocess on stdio),
with the SDK's own client, and makes the calls a model would make: start a
session with pandas and matplotlib, upload the CSV, explore it, plot it, and
read a file back. Each step prints what the model would read.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from pathlib import Path

from mcp import Client, StdioServerParameters
from mcp_types import CallToolResult, ImageContent, TextContent

ROOT = Path(__file__).resolve().parents[1]
SALES = ROOT / "samples" / "data" / "sales.csv"
CLI = str(Path(sys.executable).with_name("ai-data-agent"))
OUT = ROOT / "example-output"

EXPLORE = """
import pandas as pd
df = pd.read_csv("data/sales.csv", parse_dates=["date"])
df["revenue"] = df["units"] * df["unit_price"]
print(df.shape[0], "rows from", df["date"].min().date(), "to", df["date"].max().date())
df.groupby("region")["revenue"].sum().round(2).sort_values(ascending=False)
"""
PLOT = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
monthly = df.set_index("date").groupby("region")["revenue"].resample("ME").sum().unstack(0)
ax = monthly.plot(figsize=(7, 4), title="Monthly revenue by region")
ax.set_ylabel("revenue")
plt.tight_layout()
summary = df.groupby(["region", "product"])["revenue"].sum().unstack().round(2)
summary.to_csv("outputs/summary.csv")
print("best product per region:", summary.idxmax(axis=1).to_dict())
"""


def show(step: str, result: CallToolResult) -> None:
    print(f"\n=== {step}{' (error)' if result.is_error else ''} ===")
    for block in result.content:
        if isinstance(block, TextContent):
            print(block.text)
        elif isinstance(block, ImageContent):
            OUT.mkdir(exist_ok=True)
            target = OUT / "chart.png"
            target.write_bytes(base64.b64decode(block.data))
            print(f"[image {block.mime_type}, saved to {target}]")
    if result.is_error:
        raise SystemExit(f"{step} failed")


async def main() -> None:
    params = StdioServerParameters(command=CLI, args=["mcp"], env=dict(os.environ))
    async with Client(params, read_timeout_seconds=600) as client:
        tools = await client.list_tools()
        print("tools:", ", ".join(tool.name for tool in tools.tools))
        created = await client.call_tool(
            "create_session", {"requirements": ["pandas>=2", "matplotlib>=3.7"]}
        )
        show("create_session", created)
        session = {"session_id": _session_id(created)}
        upload = {"path": "data/sales.csv", "text": SALES.read_text(encoding="utf-8")}
        show("upload_file", await client.call_tool("upload_file", {**upload, **session}))
        show("explore", await client.call_tool("run_python", {"code": EXPLORE, **session}))
        show("plot", await client.call_tool("run_python", {"code": PLOT, **session}))
        path = {"path": "outputs/summary.csv"}
        show("read_file", await client.call_tool("read_file", {**path, **session}))
        show("close_session", await client.call_tool("close_session", session))


def _session_id(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text.split()[1]  # "session <id> started ..."


if __name__ == "__main__":
    asyncio.run(main())
