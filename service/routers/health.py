"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.access import Access, GuardedRoute, access
from service.deps import RuntimeDep
from service.responses import Health

router = APIRouter(tags=["health"], route_class=GuardedRoute)
# Probes carry no key, and the answers say nothing but "up" and "ready".
public = access(Access.PUBLIC)


@router.get("/healthz", openapi_extra=public)
async def healthz() -> Health:
    """The process answers."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health}},
    openapi_extra=public,
)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Ready only once the model and the feature state are loaded."""
    if runtime.ready:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "loading"}, status_code=503)
