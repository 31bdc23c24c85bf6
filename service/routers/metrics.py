"""Prometheus metrics of this process, in the text exposition format."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.access import Access, GuardedRoute, access
from service.deps import RuntimeDep

router = APIRouter(tags=["metrics"], route_class=GuardedRoute)


# Traffic, alert volumes and model versions are the operator's business: a scraper sends a
# key (Prometheus: ``authorization`` in the scrape config).
@router.get("/metrics", response_class=Response, openapi_extra=access(Access.ANY_KEY))
async def metrics(runtime: RuntimeDep) -> Response:
    """Counters, the latency histogram and the state gauges (also while loading).

    ``async`` on purpose: the state gauges read the runtime, which only the event loop writes.
    """
    return Response(generate_latest(runtime.telemetry.registry), media_type=CONTENT_TYPE_LATEST)
