"""Tool results for a model: one text block that says what happened, then images and links.

    text = cell_text(cell)                       # status, output tails, value, traceback
    text = run_text(result, links)               # a one-shot run: the same sections
    result = tool_result(text, images=pngs, links=links, failed=cell.status != "succeeded")
    result = error_result(exc)                   # a refusal or failure, never a traceback

The text is what a model reads first, so it leads with the status and keeps
only the ends of long output (the end is where errors and results are). A
failure is ``is_error`` with its traceback in the text; errors of the service
are their message from the one tree (`ai_data_agent.errors`), never a
traceback or anything else of the controller. Images are MCP image content
(PNG, base64), files `ResourceLink` blocks to the server's resources.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterable, Sequence

from mcp_types import CallToolResult, ContentBlock, ImageContent, ResourceLink, TextContent

from ai_data_agent.checkpoint_models import RestoreReport
from ai_data_agent.errors import AiDataAgentError, QueueFull, SessionLimit
from ai_data_agent.models import Artifact, DisplayOutput, RunResult
from ai_data_agent.session_models import CellResult, PackagesResult, SessionInfo

__all__ = [
    "INTERNAL_MESSAGE",
    "artifact_link",
    "bundle_images",
    "cell_images",
    "cell_text",
    "error_result",
    "file_link",
    "fork_text",
    "packages_text",
    "restore_text",
    "run_text",
    "tail",
    "tool_result",
]

STDOUT_TAIL = 8000  # characters of stdout a result keeps (the end)
STDERR_TAIL = 4000
VALUE_HEAD = 4000  # characters of the last expression's text/plain
PNG = "image/png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
INTERNAL_MESSAGE = "internal error in the ai-data-agent MCP server; see its log"


def tail(text: str, limit: int) -> str:
    """The last ``limit`` characters, saying how many came before."""
    if len(text) <= limit:
        return text
    return f"[... {len(text) - limit} characters before ...]\n{text[-limit:]}"


def _section(title: str, body: str) -> str:
    return f"--- {title} ---\n{body.rstrip()}"


def _output_sections(stdout: str, stderr: str, stdout_cut: bool, stderr_cut: bool) -> Iterable[str]:
    if stdout:
        note = " (truncated at the server's cap)" if stdout_cut else ""
        yield _section(f"stdout{note}", tail(stdout, STDOUT_TAIL))
    if stderr:
        note = " (truncated at the server's cap)" if stderr_cut else ""
        yield _section(f"stderr{note}", tail(stderr, STDERR_TAIL))


def artifact_link(run_id: str, artifact: Artifact) -> ResourceLink:
    """A run's file, named as a session's: by its path under the working directory
    (``outputs/<path>``); the run's resource takes the path under ``outputs/``."""
    return ResourceLink(
        type="resource_link",
        name=artifact.file_path,
        uri=f"ai-data-agent://runs/{run_id}/artifacts/{artifact.path}",
        mime_type=artifact.media_type,
        size=artifact.size,
    )


def file_link(session_id: str, path: str, size: int, media_type: str | None) -> ResourceLink:
    return ResourceLink(
        type="resource_link",
        name=path,
        uri=f"ai-data-agent://sessions/{session_id}/files/{path}",
        mime_type=media_type,
        size=size,
    )


def _artifact_lines(links: Sequence[ResourceLink]) -> str:
    return "\n".join(f"{link.name} ({link.size} bytes): {link.uri}" for link in links)


def _value_section(value: DisplayOutput | None) -> list[str]:
    if value is None:
        return []
    return [_section("value", str(value.data.get("text/plain", ""))[:VALUE_HEAD])]


def run_text(result: RunResult, links: Sequence[ResourceLink]) -> str:
    """A one-shot run: status line, error, output tails, the value, artifacts."""
    head = f"status: {result.status.value}"
    if result.exit_code is not None:
        head += f" (exit code {result.exit_code})"
    head += f"; run {result.id}; {result.timings.total_s:.1f} s"
    parts = [head]
    if result.error:
        parts.append(_section("error", result.error))
    if result.install.log_tail and result.status.value == "install_failed":
        parts.append(_section("install log", tail(result.install.log_tail, STDERR_TAIL)))
    parts += _output_sections(
        result.stdout, result.stderr, result.stdout_truncated, result.stderr_truncated
    )
    parts += _value_section(result.result)
    if links:
        parts.append(_section("files", _artifact_lines(links)))
    return "\n".join(parts)


def restore_text(report: RestoreReport, how: str = "the session was paused and resumed") -> str:
    """A resume (or a fork: ``how``), in a line or two: what came back from which
    checkpoint, and what did not."""
    lost = ", ".join(f"{v.name} ({v.type}: {v.reason})" for v in report.lost[:20])
    if report.state == "lost":
        head = f"({how} from checkpoint {report.checkpoint} with its files, but "
        return head + f"no variable: {report.error or 'the restore failed'})"
    line = (
        f"({how} from checkpoint {report.checkpoint}, after cell {report.execution_count}: "
        f"{len(report.restored)} variable(s) back"
    )
    return line + (f"; not restored: {lost})" if lost else ")")


def fork_text(source: str, info: SessionInfo) -> str:
    """A fork: the new session's id, and what it carries over."""
    text = f"new session {info.id}, forked from {source}"
    restore = info.restore
    return text + ("\n" + restore_text(restore, "it starts") if restore is not None else "")


def cell_text(cell: CellResult, links: Sequence[ResourceLink]) -> str:
    """A cell: status and state, output tails, the value, the traceback, files."""
    head = (
        f"status: {cell.status.value}; session {cell.session_id}, cell {cell.execution_count}; "
        f"state {cell.state}; {cell.timings.total_s:.1f} s"
    )
    parts = [head]
    if cell.restore is not None:
        parts.append(restore_text(cell.restore))
    elif cell.state == "lost":
        parts.append("(the kernel restarted: variables from earlier cells are gone; files stay)")
    parts += _output_sections(
        cell.stdout, cell.stderr, cell.stdout_truncated, cell.stderr_truncated
    )
    parts += _value_section(cell.result)
    if cell.error is not None:
        parts.append(_section("error", tail(cell.error.text, STDERR_TAIL)))
    if links:
        parts.append(_section("files", _artifact_lines(links)))
    return "\n".join(parts)


def packages_text(result: PackagesResult) -> str:
    lines = [f"installed: {' '.join(result.requirements)}"]
    for package in result.added:
        lines.append(f"+ {package.name} {package.version}")
    for change in result.changed:
        lines.append(f"~ {change.name} {change.old_version} -> {change.new_version}")
    for package in result.removed:
        lines.append(f"- {package.name} {package.version}")
    if result.restart_required:
        lines.append(
            "restart required: an imported package changed version; call restart_session "
            "(variables are lost, files stay)"
        )
    return "\n".join(lines)


def _png(data: object) -> bytes | None:
    """The PNG bytes of a base64 string, or None when it is not one."""
    if not isinstance(data, str):
        return None
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if raw.startswith(PNG_MAGIC) else None


def bundle_images(bundles: Iterable[DisplayOutput | None]) -> list[bytes]:
    """The PNG images of MIME bundles, in order (a cell's outputs then its value, a run's value)."""
    found = [_png(bundle.data.get(PNG)) for bundle in bundles if bundle is not None]
    return [image for image in found if image is not None]


def cell_images(cell: CellResult) -> list[bytes]:
    """PNG images of a cell, in order: display outputs (figures), then the value."""
    return bundle_images([*cell.outputs, cell.result])


def tool_result(
    text: str,
    *,
    images: Sequence[bytes] = (),
    max_images: int = 0,
    links: Sequence[ResourceLink] = (),
    failed: bool = False,
) -> CallToolResult:
    """The text, up to ``max_images`` PNG images, and the links; ``is_error`` when failed."""
    shown = list(images[:max_images])
    if len(images) > len(shown):
        text += f"\n({len(images) - len(shown)} more image(s) not shown; see the files above)"
    content: list[ContentBlock] = [TextContent(type="text", text=text)]
    for image in shown:
        encoded = base64.b64encode(image).decode()
        content.append(ImageContent(type="image", data=encoded, mime_type=PNG))
    content.extend(links)
    return CallToolResult(content=content, is_error=failed)


def error_result(error: AiDataAgentError | str) -> CallToolResult:
    """A refusal or failure of the service, as the model should read it."""
    if isinstance(error, str):
        return tool_result(error, failed=True)
    code = f" ({error.code})" if error.code else ""
    # The model sees no Retry-After header: the wait goes into the text.
    wait = ""
    if isinstance(error, QueueFull | SessionLimit) and error.retry_after is not None:
        wait = f" (retry after {math.ceil(error.retry_after)} s)"
    return tool_result(f"error{code}: {error.message}{wait}", failed=True)
