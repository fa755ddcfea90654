"""The body of ``POST /v1/runs``, read and validated once into a `RunSubmission`.

    submission = await read_submission(request, settings)   # JSON, or multipart with files
    run_request = submission.to_request()                    # nothing validated again

A JSON body is the `RunSubmission` itself. A multipart body has a ``request``
field with that JSON and ``files`` parts, each part's filename its path under
the run's working directory. Either way each input file is decoded once. A body
that does not validate raises `RequestValidationError` (422, its problems at
``body.<location>``); one that cannot be read at all, `RequestRejected` (400).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from ai_data_agent.errors import RequestRejected
from ai_data_agent.models import InputFile, RunSubmission
from ai_data_agent.settings import Settings

__all__ = ["OPENAPI_REQUEST_BODY", "read_submission"]

OPENAPI_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/RunSubmission"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "request": {"type": "string", "description": "RunSubmission JSON"},
                    "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                },
                "required": ["request"],
            }
        },
    },
}


async def read_submission(request: Request, settings: Settings) -> RunSubmission:
    """The request's body as a `RunSubmission`, validated once.

    Raises:
        RequestValidationError: the body does not validate (answered 422).
        RequestRejected: the body cannot be read (JSON syntax in the multipart
            ``request`` field, or multipart the parser refuses; answered 400).
    """
    try:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form(max_files=settings.max_input_files + 1, max_fields=4)
            try:
                return await _from_form(form)
            finally:
                await form.close()
        return RunSubmission.model_validate_json(await request.body())
    except ValidationError as exc:
        raise _invalid(exc) from exc
    except ValueError as exc:  # JSON syntax, or multipart the parser refuses
        raise RequestRejected(None, f"cannot read the request body: {exc}") from exc


async def _from_form(form: FormData) -> RunSubmission:
    raw = form.get("request") or "{}"
    data = json.loads(raw if isinstance(raw, str) else await raw.read())
    if not isinstance(data, dict):
        raise ValueError("the request field must be a JSON object")
    files = data.setdefault("files", [])
    if not isinstance(files, list):
        raise ValueError("files in the request field must be a list")
    for part in form.getlist("files"):
        if isinstance(part, UploadFile):
            try:
                files.append(InputFile.from_bytes(part.filename or "", await part.read()))
            except ValidationError as exc:
                raise _invalid(exc, ("files", len(files))) from exc
    # The uploaded files are InputFile instances already: not validated again.
    return RunSubmission.model_validate(data)


def _invalid(exc: ValidationError, within: tuple[str | int, ...] = ()) -> RequestValidationError:
    errors = exc.errors(include_url=False, include_input=False)
    return RequestValidationError([{**e, "loc": ("body", *within, *e["loc"])} for e in errors])
