"""The daemon's API description and its interactive docs, both served by the daemon itself.

    app = ApiApp(extra_models=(RunSubmission,), title="ai-data-agent", ...)
    install_docs(app)     # GET /docs: Swagger UI from the installed package, no CDN

``/openapi.json`` is FastAPI's document plus the schemas of bodies that routes
read themselves: ``POST /v1/runs`` takes JSON or multipart, so FastAPI never
sees its model, and `ApiApp` adds it (``RunSubmission``) under
``components/schemas`` so that every ``$ref`` resolves. Operation ids are the
route functions' names (``submit_run``, ``get_run``, ``create_session``), so a
generated client gets readable method names. ``/docs`` loads Swagger UI's
script and stylesheet from the ``swagger-ui-bundle-v2`` package through the
daemon, so it works on a host without internet access.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from swagger_ui_bundle import swagger_ui_path

__all__ = ["ASSETS_PATH", "DOCS_PATH", "ApiApp", "install_docs", "operation_id"]

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
REF_TEMPLATE = "#/components/schemas/{model}"


def operation_id(route: APIRoute) -> str:
    """The route function's name: unique in this app, and readable in generated clients."""
    return route.name


class ApiApp(FastAPI):
    """FastAPI, whose document also defines the models of bodies routes read themselves."""

    def __init__(self, *, extra_models: Sequence[type[BaseModel]] = (), **kwargs: Any) -> None:
        super().__init__(generate_unique_id_function=operation_id, **kwargs)
        self.extra_models = tuple(extra_models)

    def openapi(self) -> dict[str, Any]:
        schema = super().openapi()
        if self.extra_models:
            _, definitions = models_json_schema(
                [(model, "validation") for model in self.extra_models], ref_template=REF_TEMPLATE
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in definitions.get("$defs", {}).items():
                components.setdefault(name, definition)
        return schema


def install_docs(app: FastAPI, title: str) -> None:
    """Serve Swagger UI at ``/docs`` with its assets from the installed package.

    The app must be made with ``docs_url=None`` (FastAPI's own page loads them
    from a CDN).
    """
    app.mount(ASSETS_PATH, StaticFiles(directory=Path(str(swagger_ui_path))), name="docs-assets")

    async def docs(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{title} - API",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon-32x32.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    app.add_api_route(DOCS_PATH, docs, methods=["GET"], include_in_schema=False)
