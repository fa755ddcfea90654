"""What the client sends for a run: a `RunRequest`, checked against the daemon's caps,
as JSON or as multipart with the input files' bytes as they are.

    request = run_request("print(1)", requirements=["six"])   # RequestRejected if invalid
    check_sizes(request, info)                                  # info: GET /v1/info
    response = transport.request("POST", "/v1/runs", **run_body(request, info, wait=True))

Bytes as they are (not base64) keep the daemon's input file caps the only limit
on them; a request over a cap is refused here, before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict, Unpack

from pydantic import ValidationError

from ai_data_agent.api_models import RunSubmission, ServerInfo
from ai_data_agent.caps import check_input_files
from ai_data_agent.errors import RequestRejected, RequestTooLarge
from ai_data_agent.models import EgressRequest, InputFile, RunRequest

__all__ = ["RunOptions", "check_sizes", "run_body", "run_request"]


class RunOptions(TypedDict, total=False):
    """`Client.run`'s and `Client.submit`'s keyword arguments: `RunRequest`'s fields."""

    requirements: Sequence[str]
    timeout_s: float | None
    memory_mb: int | None
    cpus: float | None
    network: bool | EgressRequest | Mapping[str, Any]  # `{"allow": [...]}`: see EgressRequest
    env: Mapping[str, str] | None
    files: Sequence[InputFile]
    install_mode: Literal["cache", "per_run"] | None


def run_request(code: str, **options: Unpack[RunOptions]) -> RunRequest:
    """The `RunRequest` of ``code`` and ``options``; those left out or None take the defaults.

    Raises:
        RequestRejected: they do not validate (as the daemon would answer 422).
    """
    fields: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    for name, container in (("requirements", list), ("files", list), ("env", dict)):
        if name in fields:
            fields[name] = container(fields[name])
    try:
        return RunRequest(code=code, **fields)
    except ValidationError as exc:
        raise RequestRejected.from_errors(exc.errors()) from exc


def check_sizes(request: RunRequest, info: ServerInfo) -> None:
    """Check ``request`` against the daemon's caps.

    Raises:
        RequestTooLarge: too many input files, one too large, or too many bytes in all.
        RequestRejected: the code is larger than the daemon takes.
    """
    if len(request.code.encode()) > info.max_code_bytes:
        raise RequestRejected("code", f"larger than {info.max_code_bytes} bytes")
    check_input_files(
        request.files,
        max_files=info.max_input_files,
        max_file_bytes=info.max_input_file_bytes,
        max_total_bytes=info.max_input_total_bytes,
    )


def run_body(request: RunRequest, info: ServerInfo, *, wait: bool) -> dict[str, Any]:
    """The body of ``POST /v1/runs`` as httpx's keyword arguments.

    Raises:
        RequestTooLarge, RequestRejected: over a cap of the daemon's.
    """
    check_sizes(request, info)
    # httpx writes a double quote in a part's filename as %22, which would change
    # the path: such files travel base64 inside the JSON.
    uploads = [f for f in request.files if '"' not in f.path]
    inline = [f for f in request.files if '"' in f.path]
    submission = RunSubmission.of(request.model_copy(update={"files": inline}), wait=wait)
    text = submission.model_dump_json(exclude_defaults=True)
    if len(text.encode()) > info.max_body_bytes:
        raise RequestTooLarge("body", f"the request is larger than {info.max_body_bytes} bytes")
    if not uploads:
        return {"content": text, "headers": {"Content-Type": "application/json"}}
    parts = [("files", (f.path, f.data, "application/octet-stream")) for f in uploads]
    return {"data": {"request": text}, "files": parts}
