"""The API's documentation pages, Swagger UI (``/docs``) and ReDoc (``/redoc``), with their
scripts and styles served by the service itself, so that they render on a machine without
internet. The assets are the dist files that the ``fastapi-offline`` package ships; the pages
are FastAPI's own (`get_swagger_ui_html`, `get_redoc_html`) pointed at them.

Public, as the OpenAPI schema they render is: they hold no data, and the endpoints they call
still ask for keys.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from service.access import Access, GuardedRoute, access
from service.errors import NotFoundError

router = APIRouter(include_in_schema=False, route_class=GuardedRoute)
PUBLIC = access(Access.PUBLIC)

ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
"""The only files served from the package's directory, by name."""


def _asset(request: Request, name: str) -> str:
    return str(request.url_for("api_docs_asset", name=name).path)


def _schema(request: Request) -> str:
    return f"{request.scope.get('root_path', '')}{request.app.openapi_url}"


@router.get("/docs", openapi_extra=PUBLIC)
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=_schema(request),
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=_asset(request, "swagger-ui-bundle.js"),
        swagger_css_url=_asset(request, "swagger-ui.css"),
        swagger_favicon_url=_asset(request, "favicon.png"),
        swagger_ui_parameters=request.app.swagger_ui_parameters,
    )


@router.get("/redoc", openapi_extra=PUBLIC)
async def redoc(request: Request) -> HTMLResponse:
    page = get_redoc_html(
        openapi_url=_schema(request),
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=_asset(request, "redoc.standalone.js"),
        redoc_favicon_url=_asset(request, "favicon.png"),
        with_google_fonts=False,
    )
    # ReDoc's footer shows Redocly's logo from their CDN, and hides it when it fails to load:
    # images from this origin only, so the page asks no other host, online or not.
    page.headers["Content-Security-Policy"] = "img-src 'self' data:"
    return page


@router.get("/docs/assets/{name}", name="api_docs_asset", openapi_extra=PUBLIC)
async def asset(name: str) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFoundError(f"no documentation asset {name!r}")
    # Revalidated on every load (a 304 while unchanged): an upgrade shows at once.
    return FileResponse(
        ASSETS_DIR / name, media_type=media_type, headers={"Cache-Control": "no-cache"}
    )
