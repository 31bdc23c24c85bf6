"""Alerts: the recent ones, and a live Server-Sent Events stream for subscribers.

Both need a known key: an alert carries card and terminal ids and amounts. Each open stream
holds a connection (a file descriptor) for as long as its subscriber stays, so their number is
capped (``FRAUDSTREAM_MAX_STREAM_SUBSCRIBERS``) and one more is refused with 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent

from models.schemas import Alert, UtcDatetime
from pipelines.runtime.protocol import Runtime
from service.access import Access, GuardedRoute, access
from service.deps import RuntimeDep, SettingsDep
from service.errors import ServiceError

router = APIRouter(prefix="/v1/alerts", tags=["alerts"], route_class=GuardedRoute)

KEEP_ALIVE_SECONDS = 15.0


class StreamsFullError(ServiceError):
    status_code = 503
    headers = {"Retry-After": "30"}  # noqa: RUF012 - read only


@router.get("", openapi_extra=access(Access.ANY_KEY))
async def recent_alerts(
    runtime: RuntimeDep,
    since: Annotated[UtcDatetime | None, Query(description="Raised at or after (ISO 8601)")] = None,
    until: Annotated[UtcDatetime | None, Query(description="Raised before (ISO 8601)")] = None,
    card_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
) -> list[Alert]:
    """Recent alerts, newest first."""
    return runtime.alerts.recent(since=since, until=until, card_id=card_id, limit=limit)


async def _stream_room(runtime: RuntimeDep, settings: SettingsDep) -> Runtime:
    # Checked before the response starts, so the refusal is a status rather than a broken
    # stream; subscribers register as their stream opens, one loop turn later.
    if runtime.alerts.subscribers >= settings.max_stream_subscribers:
        raise StreamsFullError(
            f"{settings.max_stream_subscribers} alert streams are open, the most this server "
            "holds (FRAUDSTREAM_MAX_STREAM_SUBSCRIBERS); retry later or read GET /v1/alerts"
        )
    return runtime


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    openapi_extra=access(Access.ANY_KEY),
    responses={503: {"description": "As many streams are open as the server holds"}},
)
async def alert_stream(
    runtime: Annotated[Runtime, Depends(_stream_room)],
) -> AsyncIterator[ServerSentEvent]:
    """Every alert as it is raised, as Server-Sent Events (``event: alert``)."""
    async with runtime.alerts.subscribe() as queue:
        yield ServerSentEvent(comment="subscribed")
        while True:
            try:
                alert = await asyncio.wait_for(queue.get(), KEEP_ALIVE_SECONDS)
            except TimeoutError:
                yield ServerSentEvent(comment="keep-alive")
                continue
            yield ServerSentEvent(event="alert", data=alert.model_dump(mode="json"))
