"""The body of ``POST /v1/runs``, read and validated once into a `RunSubmission`.

    submission = await read_submission(request, settings)   # JSON, or multipart with files
    run_request = submission.to_request()                    # nothing validated again

A JSON body is the `RunSubmission` itself. A multipart body has a ``request``
field with that JSON and ``files`` parts, each part's filename its path under
the run's working directory; any other part is refused, never dropped. Either
way each input file is decoded once. A body that does not validate raises
`RequestValidationError` (422, its problems at ``body.<location>``); one that
cannot be read at all, `RequestRejected` (400).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import FormData, UploadFile

from ai_data_agent.api_models import RunSubmission
from ai_data_agent.errors import RequestRejected
from ai_data_agent.models import InputFile
from ai_data_agent.settings import Settings

__all__ = ["OPENAPI_REQUEST_BODY", "read_submission"]

REQUEST_PART = "request"
FILES_PART = "files"
# A few more than the one field a submission has, so that stray ones are named (422),
# not refused by the parser's count (400).
MAX_FORM_FIELDS = 8
_JSON_OBJECT = TypeAdapter(dict[str, Any])
UNKNOWN_PART = (
    f"unknown multipart part: send the JSON as {REQUEST_PART!r} and each input file as a "
    f"{FILES_PART!r} part (its filename is its path)"
)

OPENAPI_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/RunSubmission"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    REQUEST_PART: {
                        "type": "string",
                        "description": "A RunSubmission as JSON; its `files` may be left out.",
                    },
                    FILES_PART: {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "Input files; each part's filename is its path under "
                        "the working directory.",
                    },
                },
                "required": [REQUEST_PART],
                "additionalProperties": False,
            },
            "encoding": {REQUEST_PART: {"contentType": "application/json"}},
        },
    },
}


async def read_submission(request: Request, settings: Settings) -> RunSubmission:
    """The request's body as a `RunSubmission`, validated once.

    Raises:
        RequestValidationError: the body does not validate, or a multipart body
            has a part other than ``request`` and ``files`` (answered 422).
        RequestRejected: multipart the parser refuses (answered 400).
    """
    try:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form(
                max_files=settings.max_input_files + 1,
                max_fields=MAX_FORM_FIELDS,
                max_part_size=settings.max_body_bytes,
            )
            try:
                return await _from_form(form)
            finally:
                await form.close()
        return RunSubmission.model_validate_json(await request.body())
    except ValidationError as exc:
        raise _invalid(exc) from exc
    except ValueError as exc:  # multipart the parser refuses
        raise RequestRejected(None, f"cannot read the request body: {exc}") from exc


async def _from_form(form: FormData) -> RunSubmission:
    _check_parts(form)
    raw = form.get(REQUEST_PART) or "{}"
    try:
        data = _JSON_OBJECT.validate_json(raw if isinstance(raw, str) else await raw.read())
    except ValidationError as exc:
        raise _invalid(exc, (REQUEST_PART,)) from exc
    files = data.setdefault("files", [])
    if not isinstance(files, list):
        problem = {"type": "list_type", "loc": ("body", "files"), "msg": "must be a list"}
        raise RequestValidationError([problem])
    uploads = [part for part in form.getlist(FILES_PART) if isinstance(part, UploadFile)]
    for part in uploads:
        try:
            files.append(InputFile.from_bytes(part.filename or "", await part.read()))
        except ValidationError as exc:
            raise _invalid(exc, ("files", len(files))) from exc
    # The uploaded files are InputFile instances already: not validated again.
    return RunSubmission.model_validate(data)


def _check_parts(form: FormData) -> None:
    """Refuse what would otherwise be dropped: parts under other names, a ``files``
    part that is not a file, a second ``request``."""
    problems: list[dict[str, Any]] = []
    requests = 0
    for name, value in form.multi_items():
        if name == REQUEST_PART:
            requests += 1
            if requests == 2:
                problems.append(_part_problem(name, "given more than once"))
        elif name == FILES_PART:
            if not isinstance(value, UploadFile):
                problems.append(_part_problem(name, "must be a file (a part with a filename)"))
        else:
            problems.append(_part_problem(name, UNKNOWN_PART))
    if problems:
        raise RequestValidationError(problems)


def _part_problem(name: str, message: str) -> dict[str, Any]:
    return {"type": "multipart_part", "loc": ("body", name[:64]), "msg": message}


def _invalid(exc: ValidationError, within: tuple[str | int, ...] = ()) -> RequestValidationError:
    errors = exc.errors(include_url=False, include_input=False)
    return RequestValidationError([{**e, "loc": ("body", *within, *e["loc"])} for e in errors])
