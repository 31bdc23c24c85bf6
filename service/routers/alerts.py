"""Alerts: the recent ones, a live Server-Sent Events stream for subscribers, and the
analysts' verdicts on them.

Reading needs a known key: an alert carries card and terminal ids and amounts. A verdict is
a label (the `label` role): the learner learns it at once from the vector the alert was
scored with, as an ``analyst`` label. Each open stream
holds a connection (a file descriptor) for as long as its subscriber stays, so their number is
capped (``FRAUDSTREAM_MAX_STREAM_SUBSCRIBERS``) and one more is refused with 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status
from fastapi.sse import EventSourceResponse, ServerSentEvent

from models.schemas import Identifier, Label, LabelSource, UtcDatetime, Verdict
from pipelines.runtime.protocol import Runtime
from service.access import Access, GuardedRoute, access
from service.deps import ReadyRuntimeDep, RuntimeDep, SettingsDep
from service.errors import NotFoundError, ServiceError
from service.responses import ReviewedAlert, VerdictResponse, verdict_name

router = APIRouter(prefix="/v1/alerts", tags=["alerts"], route_class=GuardedRoute)

KEEP_ALIVE_SECONDS = 15.0
_NOT_TAKEN = frozenset({"unknown", "refused"})
"""Fates of a verdict that leave the alert's shown verdict as it was."""


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
) -> list[ReviewedAlert]:
    """Recent alerts, newest first, each with the analysts' verdict if one was given here."""
    log = runtime.alerts
    return [
        ReviewedAlert.of(alert, log.verdict(alert.transaction.transaction_id))
        for alert in log.recent(since=since, until=until, card_id=card_id, limit=limit)
    ]


@router.post(
    "/{transaction_id}/verdict",
    openapi_extra=access(Access.LABEL),
    responses={
        status.HTTP_202_ACCEPTED: {
            "model": VerdictResponse,
            "description": "Distributed mode: handed to the learner through the labels topic",
        },
        status.HTTP_404_NOT_FOUND: {"description": "No alert for this transaction is kept"},
    },
)
async def judge_alert(
    transaction_id: Annotated[Identifier, Path(description="The alerted transaction's id")],
    verdict: Verdict,
    runtime: ReadyRuntimeDep,
    response: Response,
) -> VerdictResponse:
    """An analyst's verdict on an alert, learned at once as an ``analyst`` label.

    Investigators know within hours what chargebacks say weeks later: the model learns the
    verdict now, from the vector the alert was scored with, and the chargeback that may follow
    repeats it. A second verdict on the same alert reverses the first, within
    ``FRAUDSTREAM_MAX_LABEL_CORRECTIONS``.
    """
    log = runtime.alerts
    if log.find(transaction_id) is None:
        raise NotFoundError(
            f"transaction_id: no alert for {transaction_id!r} is kept here (the latest "
            f"{log.capacity:,} are); send its verdict as a label to POST /v1/labels"
        )
    label = Label(
        transaction_id=transaction_id,
        is_fraud=verdict.is_fraud,
        labelled_at=datetime.now(UTC),
        source=LabelSource.ANALYST,
    )
    outcome = await runtime.take_labels([label])
    fate = "accepted" if outcome is None else outcome.statuses[0].value
    if fate not in _NOT_TAKEN:
        log.judge(transaction_id, verdict.is_fraud)
        runtime.telemetry.judged(verdict.is_fraud)
    if outcome is None:
        response.status_code = status.HTTP_202_ACCEPTED
    return VerdictResponse(
        transaction_id=transaction_id, verdict=verdict_name(verdict.is_fraud), status=fate
    )


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
