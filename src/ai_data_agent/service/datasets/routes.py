"""The datasets API: upload versions as streams, read them back, describe and delete them.

    GET    /v1/datasets                                    DatasetPage
    POST   /v1/datasets/{name}/versions                    the body -> 201 DatasetVersion
    GET    /v1/datasets/{name}                             DatasetInfo (versions, files)
    GET    /v1/datasets/{name}/versions/{v}                DatasetVersion ({v}: 3, or latest)
    GET    /v1/datasets/{name}/versions/{v}/files/{path}   the file's bytes (Range too)
    GET    /v1/datasets/{name}/versions/{v}/describe       DatasetDescription
    DELETE /v1/datasets/{name}[/versions/{v}]              [DatasetVersion] (?force=true)
    POST   /v1/sessions/{id}/datasets                      PromoteRequest -> 201 DatasetVersion

An upload is one file (``application/octet-stream`` with ``?path=``), a tar
stream (``application/x-tar``, gzip, bzip2 or xz compressed too) or
``multipart/form-data`` with one ``files`` part per file; every body streams
from the socket into blobs on a worker thread, a chunk at a time, under the
dataset caps (not the JSON body cap). Everything belongs to the requesting
tenant (`owner.dataset_owner`): another tenant's dataset answers ``404``
as one that does not exist. Uploads, downloads and deletes are audited.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any, TypeVar, cast

import anyio
from anyio.to_thread import run_sync
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from ai_data_agent.dataset_models import (
    NAME,
    DatasetDescription,
    DatasetInfo,
    DatasetMount,
    DatasetPage,
    DatasetVersion,
    PromoteRequest,
)
from ai_data_agent.errors import NotFound, RequestRejected
from ai_data_agent.service.datasets import owner
from ai_data_agent.service.datasets.describe import describe
from ai_data_agent.service.datasets.service import Body
from ai_data_agent.service.node import ServiceNode
from ai_data_agent.session_models import LIVE_SESSION_STATUSES, SessionRequest

__all__ = ["pin_session", "router"]

TAR_TYPES = frozenset(
    {"application/x-tar", "application/tar", "application/gzip", "application/x-gzip"}
    | {"application/x-gtar", "application/x-bzip2", "application/x-xz"}
)
PULL_BYTES = 1024 * 1024  # body bytes handed to the ingest thread at once, at least
PIPE_CHUNKS = 8  # read ahead of the ingest thread: at most this many (memory: 8 MiB or so)
T = TypeVar("T")
VERSION = re.compile(r"^(latest|[1-9][0-9]{0,8})$")
router = APIRouter(tags=["datasets"])

UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "application/x-tar": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "files": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "One part a file; its filename is its path.",
                    }
                },
            }
        },
    },
}


def _node(request: Request) -> ServiceNode:
    return cast(ServiceNode, request.app.state.daemon)


def _name(name: str) -> str:
    if not NAME.match(name):
        raise NotFound(f"no dataset {name[:100]!r}")
    return name


def _version(version: str) -> int | None:
    if not VERSION.match(version):
        raise RequestRejected("version", "a version number, or 'latest'")
    return None if version == "latest" else int(version)


class _BodyPipe:
    """The request body as a blocking iterator for a worker thread, read ahead on the event
    loop: a task reads the socket into a bounded queue (`PIPE_CHUNKS` chunks of up to
    `PULL_BYTES`) while the thread writes and hashes what came before, so receiving and
    storing overlap. A failure of the body (the client gone, a cap) is raised in the thread."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self._send, self._receive = anyio.create_memory_object_stream[list[bytes]](PIPE_CHUNKS)
        self._error: BaseException | None = None

    async def produce(self) -> None:
        parts: list[bytes] = []
        size = 0
        try:
            async with self._send:
                async for chunk in self._request.stream():
                    parts.append(chunk)
                    size += len(chunk)
                    if size >= PULL_BYTES:  # handed over as they came: no copy to join them
                        await self._send.send(parts)
                        parts, size = [], 0
                if parts:
                    await self._send.send(parts)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:  # the thread raises it when the queue runs dry
            self._error = exc

    def close(self) -> None:
        self._send.close()
        self._receive.close()

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                yield from anyio.from_thread.run(self._receive.receive)
            except anyio.EndOfStream:
                if self._error is not None:
                    raise self._error from None
                return


async def _ingest(pipe: _BodyPipe, work: Callable[[], T]) -> T:
    """``work()`` in a worker thread while ``pipe`` reads the body; the reader stops with it.
    What ``work`` raises is raised as it is (not in a group)."""
    done: list[T] = []
    failed: list[Exception] = []
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(pipe.produce)
            try:
                done.append(await run_sync(work))
            except Exception as exc:
                failed.append(exc)
            finally:
                group.cancel_scope.cancel()
    finally:
        pipe.close()
    if failed:
        raise failed[0]
    return done[0]


def _body(request: Request, path: str | None, chunks: Iterable[bytes]) -> Body:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        found = re.search(r'boundary="?([^";]+)"?', content_type)
        if found is None:
            raise RequestRejected("content-type", "multipart/form-data without a boundary")
        return Body("multipart", chunks, boundary=found.group(1).encode("latin-1"))
    if media_type in TAR_TYPES:
        return Body("tar", chunks)
    if media_type == "application/octet-stream":
        if not path:
            raise RequestRejected("path", "one file's upload names it: ?path=sales.csv")
        return Body("file", chunks, path=path)
    raise RequestRejected(
        "content-type",
        f"{media_type or 'none'}: send application/octet-stream (one file, ?path=), "
        "application/x-tar (a tar, compressed or not) or multipart/form-data",
    )


@router.post(
    "/datasets/{name}/versions",
    status_code=201,
    openapi_extra={"requestBody": UPLOAD_BODY},
    summary="Upload a new version (one file, a tar stream, or multipart)",
)
async def upload_version(
    name: str,
    request: Request,
    path: Annotated[
        str | None, Query(description="The file's path in the dataset (one-file uploads).")
    ] = None,
) -> DatasetVersion:
    """Streamed to storage as it arrives and hashed meanwhile; the version exists only once
    every byte is in. Refused (nothing kept): a bad name or tar entry (400), a cap (413)."""
    tenant = owner.dataset_owner(request)
    try:
        DatasetMount(name=name)
    except ValidationError as exc:
        raise RequestRejected.from_errors(exc.errors()) from exc
    _body(request, path, ())  # refused before the body is read
    pipe = _BodyPipe(request)
    body = _body(request, path, pipe)
    datasets = _node(request).datasets
    try:
        version = await _ingest(pipe, lambda: datasets.upload(tenant, name, body))
    except ClientDisconnect as exc:
        owner.audit_dataset(request, "upload", name, "cut")
        raise RequestRejected("body", "the upload ended before its end; nothing was kept") from exc
    except Exception:
        owner.audit_dataset(request, "upload", name, "refused")
        raise
    owner.audit_dataset(request, "upload", f"{name}@{version.version}", "ok")
    return version


@router.get("/datasets", summary="The tenant's datasets")
async def list_datasets(request: Request) -> DatasetPage:
    return await run_sync(_node(request).datasets.page, owner.dataset_owner(request))


@router.get("/datasets/{name}", summary="A dataset: its versions, sizes, hashes and files")
async def get_dataset(name: str, request: Request) -> DatasetInfo:
    return await run_sync(
        _node(request).datasets.dataset, owner.dataset_owner(request), _name(name)
    )


@router.get("/datasets/{name}/versions/{version}", summary="One version and its files")
async def get_version(name: str, version: str, request: Request) -> DatasetVersion:
    tenant, datasets = owner.dataset_owner(request), _node(request).datasets
    return await run_sync(datasets.version, tenant, _name(name), _version(version))


@router.get(
    "/datasets/{name}/versions/{version}/files/{path:path}",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 206: {"description": "Range"}},
    summary="A file's bytes (Range requests answered 206)",
)
async def get_file(name: str, version: str, path: str, request: Request) -> FileResponse:
    tenant, datasets = owner.dataset_owner(request), _node(request).datasets
    number = _version(version)
    if number is None:
        number = (await run_sync(datasets.version, tenant, _name(name), None)).version
    entry, local = await run_sync(datasets.file, tenant, _name(name), number, path)
    owner.audit_dataset(request, "download", f"{name}@{number}/{path[:200]}", "ok")
    media_type = mimetypes.guess_type(path, strict=False)[0] or "application/octet-stream"
    return FileResponse(
        local,
        media_type=media_type,
        filename=path.rsplit("/", 1)[-1],
        headers={"ETag": f'"{entry.sha256}"', "X-Content-SHA256": entry.sha256},
    )


@router.get(
    "/datasets/{name}/versions/{version}/describe",
    summary="Columns, types, row counts and first rows of the tabular files",
)
async def describe_version(name: str, version: str, request: Request) -> DatasetDescription:
    """Computed once per version inside a sandbox (a run of the tenant), then cached."""
    node, tenant = _node(request), owner.dataset_owner(request)
    number = _version(version)
    if number is None:
        number = (await run_sync(node.datasets.version, tenant, _name(name), None)).version
    return await describe(node, tenant, _name(name), number)


async def _delete(
    request: Request, name: str, version: int | None, force: bool
) -> list[DatasetVersion]:
    node, tenant = _node(request), owner.dataset_owner(request)
    sessions = await run_sync(node.sessions.sessions)
    live = [s for s in sessions if s.status in LIVE_SESSION_STATUSES]
    mounted = {m.digest for s in live for m in s.datasets if m.digest}
    target = name if version is None else f"{name}@{version}"
    try:
        deleted = await run_sync(
            lambda: node.datasets.delete(tenant, name, version, force=force, mounted=mounted)
        )
    except Exception:
        owner.audit_dataset(request, "delete", target, "refused")
        raise
    owner.audit_dataset(request, "delete", target, "ok")
    return deleted


Force = Annotated[bool, Query(description="Delete even while a live session mounts it.")]


@router.delete("/datasets/{name}", summary="Delete a dataset, every version")
async def delete_dataset(name: str, request: Request, force: Force = False) -> list[DatasetVersion]:
    """Refused (409 ``dataset_in_use``) while a live session mounts one of its versions,
    unless ``force``. The files go from storage at the next garbage collection."""
    return await _delete(request, _name(name), None, force)


@router.delete("/datasets/{name}/versions/{version}", summary="Delete one version")
async def delete_version(
    name: str, version: int, request: Request, force: Force = False
) -> list[DatasetVersion]:
    """As deleting the dataset, for one version; the last version takes the dataset along."""
    return await _delete(request, _name(name), version, force)


@router.post(
    "/sessions/{session_id}/datasets",
    status_code=201,
    tags=["sessions"],
    summary="Keep files of a session as a new dataset version",
)
async def promote_session_files(
    session_id: str, body: PromoteRequest, request: Request
) -> DatasetVersion:
    """Files under ``outputs/`` are stored relative to it (``outputs/clean.parquet`` is
    ``clean.parquet``), others as they are; the upload caps and quota apply."""
    node, tenant = _node(request), owner.dataset_owner(request)
    if await run_sync(node.sessions.get, session_id) is None:
        raise NotFound(f"no session with id {session_id[:64]!r}")
    version = await run_sync(node.sessions.promote, session_id, tenant, body.name, list(body.paths))
    owner.audit_dataset(request, "upload", f"{body.name}@{version.version}", "ok")
    return version


async def pin_session(node: ServiceNode, tenant: str, body: SessionRequest) -> SessionRequest:
    """A session request with its datasets pinned to the versions it will mount.

    Raises:
        NotFound: a dataset ``tenant`` does not have.
    """
    if not body.datasets:
        return body
    pinned = await run_sync(node.datasets.pin, tenant, body.datasets)
    return body.model_copy(update={"datasets": pinned})
