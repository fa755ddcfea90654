"""Files through MCP: what a model sends (text or base64) and what it gets back.

    FileArg(path="data/a.csv", text="x,y\\n1,2\\n").to_input()    # an InputFile
    decode_content(text=None, base64="iVBORw0KGgo...")           # bytes
    read_file_result(session_id, "outputs/chart.png", data, 4)   # image content

Text goes back as text (its start, when long), PNG and JPEG as image
content, anything else as a link to the file's resource.
"""

from __future__ import annotations

import base64 as b64
import binascii
import mimetypes

from mcp_types import CallToolResult, ContentBlock, ImageContent, TextContent
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ai_data_agent.errors import RequestRejected
from ai_data_agent.mcp.results import file_link, tool_result
from ai_data_agent.models import InputFile

__all__ = ["FileArg", "decode_content", "read_file_result"]

TEXT_HEAD = 50_000  # characters of a text file a result keeps
IMAGE_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


def decode_content(text: str | None, base64: str | None) -> bytes:
    """The bytes of exactly one of ``text`` (UTF-8) and ``base64``.

    Raises:
        RequestRejected: neither or both, or base64 that does not decode.
    """
    if (text is None) == (base64 is None):
        raise RequestRejected("text", "give exactly one of text and base64")
    if text is not None:
        return text.encode()
    try:
        return b64.b64decode(base64 or "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestRejected("base64", f"not valid base64: {exc}") from exc


class FileArg(BaseModel):
    """An input file as a model writes it."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Relative path under the working directory.")
    text: str | None = Field(None, description="The content as UTF-8 text.")
    base64: str | None = Field(None, description="The content as base64 (binary files).")

    @model_validator(mode="after")
    def _one_content(self) -> FileArg:
        if (self.text is None) == (self.base64 is None):
            raise ValueError("give exactly one of text and base64")
        return self

    def to_input(self) -> InputFile:
        """The file as a request carries it (path checked by the same rule as the API's)."""
        return InputFile.from_bytes(self.path, decode_content(self.text, self.base64))


def read_file_result(session_id: str, path: str, data: bytes, max_images: int) -> CallToolResult:
    """``data`` for a model: an image, text, or a link to the resource."""
    media_type = mimetypes.guess_type(path)[0]
    link = file_link(session_id, path, len(data), media_type)
    for magic, image_type in IMAGE_TYPES.items():
        if data.startswith(magic) and max_images > 0:
            content: list[ContentBlock] = [
                TextContent(type="text", text=f"{path}: {image_type}, {len(data)} bytes"),
                ImageContent(type="image", data=b64.b64encode(data).decode(), mime_type=image_type),
                link,
            ]
            return CallToolResult(content=content)
    try:
        body = data.decode()
    except UnicodeDecodeError:
        kind = media_type or "binary"
        return tool_result(f"{path}: {kind}, {len(data)} bytes (not text)", links=[link])
    note = ""
    if len(body) > TEXT_HEAD:
        note = f"\n[... {len(body) - TEXT_HEAD} more characters; read the resource for all]"
    return tool_result(f"{path} ({len(data)} bytes):\n{body[:TEXT_HEAD]}{note}", links=[link])
