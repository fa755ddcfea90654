"""The datasets API: upload versions as streams, read them back, describe and delete them.

    GET    /v1/datasets                                    DatasetPage (?tenant=: an admin's)
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
dataset caps (not the JSON body cap). A dataset is named within its tenant,
and a request acts on its principal's tenant's datasets: another tenant's
answers ``404`` as one that does not exist. An admin may name a tenant with
``?tenant=`` on every route (and lists every tenant's without it). Every
request is in the audit log (`audit_http`, actions ``dataset.*``).
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any, TypeVar

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
from ai_data_agent.service.datasets.describe import describe
from ai_data_agent.service.datasets.service import Body
from ai_data_agent.service.deps import NodeDep, PrincipalDep, note_object
from ai_data_agent.service.node import ServiceNode
from ai_data_agent.service.ownership import TenantSessions
from ai_data_agent.session_models import LIVE_SESSION_STATUSES, SessionRequest
from ai_data_agent.tenant_models import Principal

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


TenantQuery = Annotated[
    str | None,
    Query(description="An admin: this tenant's datasets (an agent's are always its own)."),
]


def _tenant(principal: Principal, tenant: str | None) -> str:
    """The tenant whose datasets a request acts on: the principal's, or an admin's pick."""
    return principal.scope(tenant) or principal.tenant


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
    node: NodeDep,
    principal: PrincipalDep,
    path: Annotated[
        str | None, Query(description="The file's path in the dataset (one-file uploads).")
    ] = None,
    tenant: TenantQuery = None,
) -> DatasetVersion:
    """Streamed to storage as it arrives and hashed meanwhile; the version exists only once
    every byte is in. Refused (nothing kept): a bad name or tar entry (400), a cap or the
    tenant's storage quota (413, naming it)."""
    owner = _tenant(principal, tenant)
    if owner != principal.tenant and await run_sync(node.tenants.get_tenant, owner) is None:
        raise NotFound(f"no tenant {owner[:64]!r}")  # an admin's upload for no one
    try:
        DatasetMount(name=name)
    except ValidationError as exc:
        raise RequestRejected.from_errors(exc.errors()) from exc
    _body(request, path, ())  # refused before the body is read
    pipe = _BodyPipe(request)
    body = _body(request, path, pipe)
    datasets = node.datasets
    try:
        version = await _ingest(pipe, lambda: datasets.upload(owner, name, body))
    except ClientDisconnect as exc:
        raise RequestRejected("body", "the upload ended before its end; nothing was kept") from exc
    note_object(request, f"{name}@{version.version}")
    return version


@router.get("/datasets", summary="The tenant's datasets (an admin: every tenant's)")
async def list_datasets(
    node: NodeDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> DatasetPage:
    return await run_sync(node.datasets.page, principal.scope(tenant))


@router.get("/datasets/{name}", summary="A dataset: its versions, sizes, hashes and files")
async def get_dataset(
    name: str, node: NodeDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> DatasetInfo:
    return await run_sync(node.datasets.dataset, _tenant(principal, tenant), _name(name))


@router.get("/datasets/{name}/versions/{version}", summary="One version and its files")
async def get_version(
    name: str, version: str, node: NodeDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> DatasetVersion:
    owner = _tenant(principal, tenant)
    return await run_sync(node.datasets.version, owner, _name(name), _version(version))


@router.get(
    "/datasets/{name}/versions/{version}/files/{path:path}",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 206: {"description": "Range"}},
    summary="A file's bytes (Range requests answered 206)",
)
async def get_file(
    name: str,
    version: str,
    path: str,
    node: NodeDep,
    principal: PrincipalDep,
    tenant: TenantQuery = None,
) -> FileResponse:
    owner, datasets = _tenant(principal, tenant), node.datasets
    number = _version(version)
    if number is None:
        number = (await run_sync(datasets.version, owner, _name(name), None)).version
    entry, local = await run_sync(datasets.file, owner, _name(name), number, path)
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
async def describe_version(
    name: str, version: str, node: NodeDep, principal: PrincipalDep, tenant: TenantQuery = None
) -> DatasetDescription:
    """Computed once per version inside a sandbox (a run of the tenant), then cached."""
    owner = _tenant(principal, tenant)
    number = _version(version)
    if number is None:
        number = (await run_sync(node.datasets.version, owner, _name(name), None)).version
    return await describe(node, owner, _name(name), number)


async def _delete(
    node: ServiceNode, owner: str, name: str, version: int | None, force: bool
) -> list[DatasetVersion]:
    sessions = await run_sync(lambda: node.sessions.sessions(tenant=owner))
    live = [s for s in sessions if s.status in LIVE_SESSION_STATUSES]
    mounted = {m.digest for s in live for m in s.datasets if m.digest}
    return await run_sync(
        lambda: node.datasets.delete(owner, name, version, force=force, mounted=mounted)
    )


Force = Annotated[bool, Query(description="Delete even while a live session mounts it.")]


@router.delete("/datasets/{name}", summary="Delete a dataset, every version")
async def delete_dataset(
    name: str,
    node: NodeDep,
    principal: PrincipalDep,
    force: Force = False,
    tenant: TenantQuery = None,
) -> list[DatasetVersion]:
    """Refused (409 ``dataset_in_use``) while a live session of the tenant mounts one of
    its versions, unless ``force``. The files go from storage at the next garbage
    collection."""
    return await _delete(node, _tenant(principal, tenant), _name(name), None, force)


@router.delete("/datasets/{name}/versions/{version}", summary="Delete one version")
async def delete_version(
    name: str,
    version: int,
    node: NodeDep,
    principal: PrincipalDep,
    force: Force = False,
    tenant: TenantQuery = None,
) -> list[DatasetVersion]:
    """As deleting the dataset, for one version; the last version takes the dataset along."""
    return await _delete(node, _tenant(principal, tenant), _name(name), version, force)


@router.post(
    "/sessions/{session_id}/datasets",
    status_code=201,
    tags=["sessions"],
    summary="Keep files of a session as a new dataset version",
)
async def promote_session_files(
    session_id: str, body: PromoteRequest, request: Request, node: NodeDep, principal: PrincipalDep
) -> DatasetVersion:
    """Files under ``outputs/`` are stored relative to it (``outputs/clean.parquet`` is
    ``clean.parquet``), others as they are, as a dataset of the session's tenant; the
    upload caps and the tenant's storage quota apply."""
    info = await run_sync(TenantSessions(node.sessions).get, principal, session_id)
    paths = list(body.paths)
    version = await run_sync(node.sessions.promote, session_id, info.tenant, body.name, paths)
    note_object(request, f"{body.name}@{version.version}")
    return version


def pin_session(node: ServiceNode, tenant: str, body: SessionRequest) -> SessionRequest:
    """A session request with its datasets pinned to the versions it will mount (blocks).

    Raises:
        NotFound: a dataset ``tenant`` does not have.
    """
    if not body.datasets:
        return body
    pinned = node.datasets.pin(tenant, body.datasets)
    return body.model_copy(update={"datasets": pinned})
