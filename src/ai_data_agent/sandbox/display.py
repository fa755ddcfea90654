"""Rich output without IPython: a MIME bundle for any object, by IPython's own protocol.

    bundle = mime_bundle(df)        # {"text/plain": "...", "text/html": "<table>..."}
    bundle = mime_bundle(figure)    # matplotlib figure: {"text/plain": ..., "image/png": "iVBOR..."}

An object may offer ``_repr_mimebundle_(include, exclude)`` (a dict, or a
``(data, metadata)`` pair) and the ``_repr_html_`` / ``_repr_markdown_`` /
``_repr_svg_`` / ``_repr_png_`` / ``_repr_jpeg_`` / ``_repr_json_`` /
``_repr_latex_`` methods; what they return is taken as IPython takes it (binary
images base64-encoded, JSON as a JSON value). ``text/plain`` is always there
(``repr``). A method that raises is skipped, as IPython skips it. Sizes are the
kernel's business (`fit`). Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import base64
import json

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from typing import Any

REPR_METHODS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("application/json", "_repr_json_"),
    ("text/latex", "_repr_latex_"),
)
BINARY_TYPES = ("image/png", "image/jpeg", "image/gif")
MAX_PLAIN_CHARS = 100_000


def plain_text(obj: object) -> str:
    """``repr(obj)``; a repr that raises gives a short description instead."""
    try:
        text = repr(obj)
    except Exception as exc:
        return f"<{type(obj).__name__} object; repr failed: {type(exc).__name__}>"
    return text if len(text) <= MAX_PLAIN_CHARS else text[:MAX_PLAIN_CHARS] + "..."


def _encode(mime: str, value: Any) -> Any:
    """A value as JSON can carry it: bytes of binary images as base64 text."""
    if isinstance(value, bytes):
        if mime in BINARY_TYPES or mime.startswith("image/"):
            return base64.b64encode(value).decode("ascii")
        return value.decode("utf-8", "replace")
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
        return _encode(mime, value[0])  # (data, metadata) from a _repr_*_ method
    if mime == "application/json" or mime.endswith("+json"):
        json.dumps(value)  # raises when it is not JSON-serialisable
        return value
    if isinstance(value, str):
        return value
    return str(value)


def _from_mimebundle(obj: object) -> tuple[dict[str, Any], dict[str, Any]]:
    method = getattr(obj, "_repr_mimebundle_", None)
    if not callable(method):
        return {}, {}
    try:
        found = method(include=None, exclude=None)
    except Exception:
        return {}, {}
    metadata: dict[str, Any] = {}
    if isinstance(found, tuple) and len(found) == 2:
        found, meta = found
        metadata = meta if isinstance(meta, dict) else {}
    return (found if isinstance(found, dict) else {}), metadata


def mime_bundle(obj: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(data, metadata)`` for ``obj``: every representation it offers, and ``text/plain``."""
    data: dict[str, Any] = {}
    found, metadata = _from_mimebundle(obj)
    for mime, value in found.items():
        if isinstance(mime, str) and value is not None:
            try:
                data[mime] = _encode(mime, value)
            except (TypeError, ValueError):
                continue
    for mime, name in REPR_METHODS:
        if mime in data:
            continue
        method = getattr(obj, name, None)
        if not callable(method) or isinstance(obj, type):
            continue
        try:
            value = method()
            if value is not None:
                data[mime] = _encode(mime, value)
        except Exception:  # noqa: S112 (IPython skips a representation that fails, too)
            continue
    if not isinstance(data.get("text/plain"), str):
        data["text/plain"] = plain_text(obj)
    return data, metadata if isinstance(metadata, dict) else {}


def bundle_size(data: dict[str, Any]) -> int:
    """Bytes the bundle takes as JSON."""
    return len(json.dumps(data, ensure_ascii=True, default=str))


def fit(data: dict[str, Any], max_bytes: int) -> tuple[dict[str, Any], bool]:
    """The bundle within ``max_bytes``: the richest representations dropped first, then
    ``text/plain`` cut. Returns the bundle and whether anything was dropped or cut."""
    if bundle_size(data) <= max_bytes:
        return data, False
    kept = dict(data)
    for mime in sorted(kept, key=lambda m: -bundle_size({m: kept[m]})):
        if mime != "text/plain" and bundle_size(kept) > max_bytes:
            del kept[mime]
    plain = str(kept.get("text/plain", ""))
    while bundle_size(kept) > max_bytes and plain:
        plain = plain[: max(len(plain) // 2, 0)]
        kept["text/plain"] = plain + "... [cut]"
    return kept, True
