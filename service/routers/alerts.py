"""Alerts: the recent ones, and a live Server-Sent Events stream for subscribers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent

from models.schemas import Alert, UtcDatetime
from service.deps import RuntimeDep

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])

KEEP_ALIVE_SECONDS = 15.0


@router.get("")
async def recent_alerts(
    runtime: RuntimeDep,
    since: Annotated[UtcDatetime | None, Query(description="Raised at or after (ISO 8601)")] = None,
    until: Annotated[UtcDatetime | None, Query(description="Raised before (ISO 8601)")] = None,
    card_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
) -> list[Alert]:
    """Recent alerts, newest first."""
    return runtime.alerts.recent(since=since, until=until, card_id=card_id, limit=limit)


@router.get("/stream", response_class=EventSourceResponse)
async def alert_stream(runtime: RuntimeDep) -> AsyncIterator[ServerSentEvent]:
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
