"""The MCP tools: Python in a sandbox, sessions, packages and files, for a model.

    tools = SandboxTools(sandbox, ToolOptions(default_session=True, ...))
    tools.register(server)          # run_python, create_session, ..., close_session

Each tool answers with a `CallToolResult` (see `results`): bad code is a
result with ``is_error`` and its traceback, a refusal of the service is a
result with ``is_error`` and the service's message, and nothing of the
controller (no traceback of ours, no environment) reaches the model. With
``default_session`` (stdio), calls without a ``session_id`` use one session
of this process, started at the first such call and closed at exit; without
it (HTTP) ``run_python`` without a session is a one-shot run in a fresh
sandbox and the other tools need a ``session_id``.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import anyio
from loguru import logger
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field, ValidationError

from ai_data_agent.errors import AiDataAgentError, RequestRejected, SessionGone
from ai_data_agent.mcp import descriptions as doc
from ai_data_agent.mcp.files import FileArg, decode_content, read_file_result
from ai_data_agent.mcp.progress import LiveOutput, follow
from ai_data_agent.mcp.results import (
    INTERNAL_MESSAGE,
    artifact_link,
    bundle_images,
    cell_images,
    cell_text,
    error_result,
    file_link,
    fork_text,
    packages_text,
    run_text,
    tool_result,
)
from ai_data_agent.mcp.sandbox import SandboxService
from ai_data_agent.models import InputFile, RunRequest
from ai_data_agent.session_models import CellResult, SessionRequest

__all__ = ["SandboxTools", "ToolOptions", "guard"]

PNG = "image/png"
SessionId = Annotated[str | None, Field(description=doc.SESSION_ID)]
Requirements = Annotated[list[str] | None, Field(description=doc.REQUIREMENTS)]
Files = Annotated[list[FileArg] | None, Field(description=doc.FILES)]
FilePath = Annotated[str, Field(description=doc.PATH)]
Datasets = Annotated[list[str] | None, Field(description=doc.DATASETS)]


@dataclass(frozen=True)
class ToolOptions:
    default_session: bool  # stdio: calls without a session_id share one session
    max_images: int
    cell_timeout_s: float  # run_python's time limit when the call sets none


async def guard(call: Callable[[], Awaitable[CallToolResult]]) -> CallToolResult:
    """The tool's result, or its error as a result the model can read."""
    try:
        return await call()
    except AiDataAgentError as exc:
        return error_result(exc)
    except ValidationError as exc:
        return error_result(RequestRejected.from_errors(exc.errors()))
    except Exception as exc:
        logger.opt(exception=exc).error("MCP tool failed: {}", exc)
        return error_result(INTERNAL_MESSAGE)


class SandboxTools:
    """The tool functions over one `SandboxService`. See the module docstring."""

    def __init__(self, sandbox: SandboxService, options: ToolOptions) -> None:
        self.sandbox = sandbox
        self.options = options
        self._default: str | None = None
        self._default_lock = anyio.Lock()

    # -- sessions -----------------------------------------------------------------------
    async def _default_session(
        self, requirements: list[str], files: list[InputFile], datasets: list[str]
    ) -> str:
        async with self._default_lock:
            if self._default is None:
                request = SessionRequest.model_validate(
                    {"requirements": requirements, "files": files, "datasets": datasets}
                )
                info = await self.sandbox.create_session(request)
                self._default = info.id
                return info.id
        _no_datasets_now(datasets)
        await self._prepare(self._default, requirements, files)
        return self._default

    async def _prepare(
        self, session_id: str, requirements: list[str], files: list[InputFile]
    ) -> None:
        if requirements:
            await self.sandbox.install(session_id, requirements)
        for file in files:
            await self.sandbox.upload(session_id, file.path, file.data)

    async def _session_id(self, session_id: str | None) -> str:
        if session_id:
            return session_id
        if not self.options.default_session:
            raise RequestRejected("session_id", "required here: call create_session first")
        return await self._default_session([], [], [])

    def _forget_if_default(self, session_id: str) -> None:
        if session_id == self._default:
            self._default = None

    async def close_default(self) -> None:
        """Close the default session, if one was started (at exit)."""
        if self._default is not None:
            session_id, self._default = self._default, None
            with anyio.CancelScope(shield=True):
                try:
                    await self.sandbox.close_session(session_id)
                except AiDataAgentError as exc:  # it expires on its own; exit goes on
                    logger.warning("cannot close the default session {}: {}", session_id, exc)

    # -- run_python -----------------------------------------------------------------------
    async def run_python(
        self,
        code: Annotated[str, Field(description=doc.CODE)],
        ctx: Context,
        requirements: Requirements = None,
        files: Files = None,
        timeout_s: Annotated[float | None, Field(gt=0, description=doc.TIMEOUT)] = None,
        session_id: SessionId = None,
        datasets: Datasets = None,
    ) -> CallToolResult:
        async def call() -> CallToolResult:
            inputs = [f.to_input() for f in files or []]
            timeout = min(timeout_s or self.options.cell_timeout_s, self._max_timeout())
            if session_id or self.options.default_session:
                if session_id:
                    _no_datasets_now(datasets or [])
                    await self._prepare(session_id, requirements or [], inputs)
                    sid = session_id
                else:
                    sid = await self._default_session(requirements or [], inputs, datasets or [])
                return await self._cell(sid, code, timeout, ctx)
            request = RunRequest.model_validate(
                {
                    "code": code,
                    "requirements": requirements or [],
                    "files": inputs,
                    "timeout_s": timeout,
                    "datasets": datasets or [],
                }
            )
            return await self._run(request, ctx)

        return await guard(call)

    def _max_timeout(self) -> float:
        return self.sandbox.capabilities.max_timeout_s

    async def _run(self, request: RunRequest, ctx: Context) -> CallToolResult:
        output = LiveOutput()
        job = await self.sandbox.start_run(request, output)
        grace = self.sandbox.capabilities.interrupt_grace_s
        result = await follow(
            job, ctx.report_progress, total_s=request.timeout_s, grace_s=grace, output=output
        )
        links = [artifact_link(result.id, a) for a in result.artifacts]
        images = bundle_images([result.result])
        for artifact in result.artifacts:
            if artifact.media_type == PNG and len(images) < self.options.max_images:
                images.append(await self.sandbox.artifact(result.id, artifact.path))
        failed = result.status.value != "succeeded"
        return tool_result(
            run_text(result, links),
            images=images,
            max_images=self.options.max_images,
            links=links,
            failed=failed,
        )

    async def _cell(
        self, session_id: str, code: str, timeout: float, ctx: Context
    ) -> CallToolResult:
        output = LiveOutput()
        try:
            job = await self.sandbox.start_cell(session_id, code, timeout, output)
            grace = self.sandbox.capabilities.interrupt_grace_s
            cell: CellResult = await follow(
                job, ctx.report_progress, total_s=timeout, grace_s=grace, output=output
            )
        except SessionGone:
            self._forget_if_default(session_id)
            raise
        links = [file_link(session_id, a.file_path, a.size, a.media_type) for a in cell.artifacts]
        return tool_result(
            cell_text(cell, links),
            images=cell_images(cell),
            max_images=self.options.max_images,
            links=links,
            failed=cell.status.value != "succeeded",
        )

    # -- the session tools --------------------------------------------------------------
    async def create_session(
        self, requirements: Requirements = None, files: Files = None, datasets: Datasets = None
    ) -> CallToolResult:
        async def call() -> CallToolResult:
            request = SessionRequest.model_validate(
                {
                    "requirements": requirements or [],
                    "files": [f.to_input() for f in files or []],
                    "datasets": datasets or [],
                }
            )
            info = await self.sandbox.create_session(request)
            packages = ", ".join(f"{p.name} {p.version}" for p in info.packages) or "none"
            return tool_result(
                f"session {info.id} started (no network; {info.memory_mb} MiB, {info.cpus:g} "
                f"CPU). Pass session_id={info.id!r} to run_python and the file tools.\n"
                f"packages: {packages}"
            )

        return await guard(call)

    async def install_packages(
        self,
        requirements: Annotated[list[str], Field(min_length=1, description=doc.REQUIREMENTS)],
        session_id: SessionId = None,
    ) -> CallToolResult:
        async def call() -> CallToolResult:
            sid = await self._session_id(session_id)
            return tool_result(packages_text(await self.sandbox.install(sid, requirements)))

        return await guard(call)

    async def upload_file(
        self,
        path: FilePath,
        text: Annotated[str | None, Field(description=doc.TEXT_CONTENT)] = None,
        base64: Annotated[str | None, Field(description=doc.BASE64_CONTENT)] = None,
        session_id: SessionId = None,
    ) -> CallToolResult:
        async def call() -> CallToolResult:
            data = decode_content(text, base64)
            sid = await self._session_id(session_id)
            stored = await self.sandbox.upload(sid, path, data)
            return tool_result(f"wrote {stored} ({len(data)} bytes) in session {sid}")

        return await guard(call)

    async def list_files(self, session_id: SessionId = None) -> CallToolResult:
        async def call() -> CallToolResult:
            sid = await self._session_id(session_id)
            found = await self.sandbox.files(sid)
            lines = [f"{f.path}\t{f.size} bytes" for f in found]
            links = [file_link(sid, f.path, f.size, mimetypes.guess_type(f.path)[0]) for f in found]
            body = "\n".join(lines) if lines else "(no files)"
            return tool_result(f"files of session {sid}:\n{body}", links=links)

        return await guard(call)

    async def read_file(self, path: FilePath, session_id: SessionId = None) -> CallToolResult:
        async def call() -> CallToolResult:
            sid = await self._session_id(session_id)
            data = await self.sandbox.download(sid, path)
            return read_file_result(sid, path, data, self.options.max_images)

        return await guard(call)

    async def restart_session(self, session_id: SessionId = None) -> CallToolResult:
        async def call() -> CallToolResult:
            sid = await self._session_id(session_id)
            info = await self.sandbox.restart(sid)
            return tool_result(
                f"session {sid} has a fresh kernel (generation {info.generation}): every "
                "variable is gone, files and installed packages stay"
            )

        return await guard(call)

    async def fork_session(self, session_id: SessionId = None) -> CallToolResult:
        async def call() -> CallToolResult:
            sid = await self._session_id(session_id)
            info = await self.sandbox.fork(sid)
            return tool_result(fork_text(sid, info))

        return await guard(call)

    async def close_session(self, session_id: SessionId = None) -> CallToolResult:
        async def call() -> CallToolResult:
            sid = await self._session_id(session_id)
            self._forget_if_default(sid)
            info = await self.sandbox.close_session(sid)
            if info is None:
                raise SessionGone.ended(sid, None)
            return tool_result(f"session {sid} is {info.status.value}; its container is removed")

        return await guard(call)

    # -- registration -------------------------------------------------------------------
    def register(self, server: MCPServer) -> None:
        """Add every tool to ``server``, with its description and annotations."""
        network = self.sandbox.capabilities.allow_network
        run_help = doc.RUN_PYTHON_STDIO if self.options.default_session else doc.RUN_PYTHON_HTTP
        tools: list[tuple[Callable[..., Awaitable[CallToolResult]], str, ToolAnnotations]] = [
            (self.run_python, run_help, _hints("Run Python", open_world=network)),
            (self.create_session, doc.CREATE_SESSION, _hints("Start a session")),
            (self.install_packages, doc.INSTALL, _hints("Install packages", idempotent=True)),
            (
                self.upload_file,
                doc.UPLOAD,
                _hints("Upload a file", destructive=True, idempotent=True),
            ),
            (self.list_files, doc.LIST_FILES, _hints("List files", read_only=True)),
            (self.read_file, doc.READ_FILE, _hints("Read a file", read_only=True)),
            (
                self.restart_session,
                doc.RESTART,
                _hints("Restart the kernel", destructive=True, idempotent=True),
            ),
            (self.fork_session, doc.FORK, _hints("Fork a session")),
            (
                self.close_session,
                doc.CLOSE,
                _hints("Close a session", destructive=True, idempotent=True),
            ),
        ]
        for function, description, hints in tools:
            server.add_tool(
                function,
                description=description,
                title=hints.title,
                annotations=hints,
                structured_output=False,
            )


def _no_datasets_now(datasets: list[str]) -> None:
    if datasets:
        raise RequestRejected(
            "datasets", "a session mounts datasets when it starts: pass them to create_session"
        )


def _hints(
    title: str,
    *,
    read_only: bool = False,
    destructive: bool = False,
    idempotent: bool = False,
    open_world: bool = False,
) -> ToolAnnotations:
    return ToolAnnotations(
        title=title,
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=open_world,
    )
