"""The datasets pages: the list, a dataset's versions, a version's files, the describe preview.

    GET /console/datasets?tenant=team-a                           the list (an admin's: any tenant)
    GET /console/datasets/{name}?tenant=                          its versions
    GET /console/datasets/{name}/versions/{v}?tenant=             a version's files
    GET /console/datasets/{name}/versions/{v}/files/{path}        a file, as an attachment
    GET /console/datasets/{name}/versions/{v}/describe?tenant=    columns, types, first rows

A dataset is named within its tenant: an agent's pages are its own tenant's
(another's answers 404 as a name never used); an admin's list shows every
tenant's, and its links name the owner with ``tenant``. Everything goes through
the datasets service, as the API's routes do; the describe preview is the
API's (cached with the version, else a run of the owning tenant, seconds).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from ai_data_agent.dataset_models import NAME
from ai_data_agent.errors import NotFound
from ai_data_agent.models import Artifact
from ai_data_agent.service.console import frames
from ai_data_agent.service.console.pages import Page
from ai_data_agent.service.console.web import Viewer, console_of, current_viewer, render

__all__ = ["PAGE", "router"]

PAGE = Page("datasets", "Datasets")
MAX_VERSION = 999_999_999  # the API's version numbers: up to nine digits

router = APIRouter()
ViewerDep = Annotated[Viewer, Depends(current_viewer)]
TenantQuery = Annotated[str | None, Query(max_length=64)]
VersionPath = Annotated[int, Path(ge=1, le=MAX_VERSION)]


def _name(name: str) -> str:
    if not NAME.match(name):
        raise NotFound(f"no dataset {name[:100]!r}")
    return name


@router.get("/datasets")
async def datasets_page(
    request: Request, viewer: ViewerDep, tenant: TenantQuery = None
) -> Response:
    page = await console_of(request).backend.datasets(viewer.principal, tenant or None)
    return render(request, "datasets.html", {"page": page, "tenant": tenant or ""}, viewer=viewer)


@router.get("/datasets/{name}")
async def dataset_page(
    request: Request, name: str, viewer: ViewerDep, tenant: TenantQuery = None
) -> Response:
    backend = console_of(request).backend
    info = await backend.dataset(viewer.principal, tenant or None, _name(name))
    context = {"info": info, "tenant": tenant or ""}
    return render(request, "dataset.html", context, viewer=viewer)


@router.get("/datasets/{name}/versions/{version}")
async def version_page(
    request: Request, name: str, version: VersionPath, viewer: ViewerDep, tenant: TenantQuery = None
) -> Response:
    backend = console_of(request).backend
    found = await backend.dataset_version(viewer.principal, tenant or None, _name(name), version)
    context = {"version": found, "tenant": tenant or ""}
    return render(request, "dataset_version.html", context, viewer=viewer)


@router.get("/datasets/{name}/versions/{version}/files/{path:path}")
async def dataset_file(
    request: Request,
    name: str,
    version: VersionPath,
    path: str,
    viewer: ViewerDep,
    tenant: TenantQuery = None,
) -> Response:
    backend = console_of(request).backend
    entry, body = await backend.dataset_file(
        viewer.principal, tenant or None, _name(name), version, path
    )
    listed = Artifact(
        path=entry.path, size=entry.size, sha256=entry.sha256, media_type="application/octet-stream"
    )
    return frames.download(listed, body)


@router.get("/datasets/{name}/versions/{version}/describe")
async def describe_page(
    request: Request, name: str, version: VersionPath, viewer: ViewerDep, tenant: TenantQuery = None
) -> Response:
    backend = console_of(request).backend
    found = await backend.describe(viewer.principal, tenant or None, _name(name), version)
    context = {"description": found, "tenant": tenant or ""}
    return render(request, "dataset_describe.html", context, viewer=viewer)
