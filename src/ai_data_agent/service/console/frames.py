"""Answers that carry what users' code produced: downloads, image previews, HTML in a sandbox.

    download(artifact, body)          # attachment; never rendered by the browser
    image(data, "image/png")          # inline, for <img>, only for raster image types
    html_frame(html)                  # a document for <iframe sandbox>: no script, no origin

User-produced HTML (a DataFrame's ``text/html``, an HTML artifact) is never put
into a console page: it is served on its own, with ``Content-Security-Policy:
sandbox`` (an opaque origin, no scripts, no forms, no popups) and nothing loaded
from anywhere, and shown in an ``<iframe sandbox>``. Everything else goes out
with ``nosniff`` and a sandboxing policy too, so no answer here can run script
in the console's origin, even opened on its own.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path, PurePosixPath

from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from ai_data_agent.models import Artifact
from ai_data_agent.service.console.backend import ArtifactBody

__all__ = ["FRAME_CSP", "INLINE_IMAGES", "MAX_PREVIEW_BYTES", "download", "html_frame", "image"]

FRAME_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
)
FILE_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"
INLINE_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
MAX_PREVIEW_BYTES = 8 * 1024 * 1024
# The frame's own look: its policy allows inline styles (the user's HTML has its own).
FRAME_HEAD = (
    '<!doctype html><html><head><meta charset="utf-8"><style>'
    "body{margin:0;padding:.5rem;font:13px/1.4 system-ui,sans-serif;color:#1d2430}"
    "table{border-collapse:collapse}th,td{border:1px solid #d6dbe3;padding:.2rem .5rem;"
    "text-align:right}thead th{background:#f1f3f7}tbody tr:nth-child(odd){background:#fafbfc}"
    "</style></head><body>"
)


def _disposition(kind: str, path: str) -> str:
    name = urllib.parse.quote(PurePosixPath(path).name, safe="")
    return f"{kind}; filename*=UTF-8''{name}"


def download(artifact: Artifact, body: ArtifactBody) -> Response:
    """An artifact as an attachment, whatever its type."""
    headers = {
        "content-security-policy": FILE_CSP,
        "content-disposition": _disposition("attachment", artifact.path),
    }
    if isinstance(body, Path):
        return FileResponse(body, media_type="application/octet-stream", headers=headers)
    headers["content-length"] = str(artifact.size)
    return StreamingResponse(
        iterate_in_threadpool(body), media_type="application/octet-stream", headers=headers
    )


def image(data: bytes, media_type: str, path: str = "image") -> Response:
    """A raster image to show inline (``<img>``); callers check the type is in INLINE_IMAGES."""
    headers = {
        "content-security-policy": FILE_CSP,
        "content-disposition": _disposition("inline", path),
    }
    return Response(data, media_type=media_type, headers=headers)


def html_frame(html: str) -> Response:
    """User HTML as a sandboxed document, for an ``<iframe sandbox>`` of a console page."""
    headers = {"content-security-policy": FRAME_CSP, "x-frame-options": "SAMEORIGIN"}
    body = FRAME_HEAD + html + "</body></html>"
    return Response(body, media_type="text/html; charset=utf-8", headers=headers)


def read_preview(body: ArtifactBody) -> bytes | None:
    """At most MAX_PREVIEW_BYTES of an artifact (blocking), or None when it is larger."""
    if isinstance(body, Path):
        with body.open("rb") as file:
            data = file.read(MAX_PREVIEW_BYTES + 1)
    else:
        chunks: list[bytes] = []
        total = 0
        for chunk in body:
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_PREVIEW_BYTES:
                break
        data = b"".join(chunks)
    return None if len(data) > MAX_PREVIEW_BYTES else data
