"""The dashboard: the page risk analysts watch, and the figures it polls.

The page is static (`service/static/`, no build step); the live alert feed comes from
`GET /v1/alerts/stream` and the recent alerts from `GET /v1/alerts`, the models panel reads
`GET /v1/models` and calls its admin routes with the key typed into the page, so
`GET /v1/dashboard` carries only what no other endpoint gives.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from pipelines.runtime.dashboard import challenger_history
from pipelines.runtime.model_status import ModelStatus
from service.access import Access, GuardedRoute, access
from service.deps import ReadyRuntimeDep
from service.responses import (
    AlertMinute,
    AlertRateResponse,
    DashboardModel,
    DashboardResponse,
    QualitySample,
    ScoreBinResponse,
    ScoreDistribution,
    finite_or_none,
)

router = APIRouter(tags=["dashboard"], route_class=GuardedRoute)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# The page loads its script and style from this origin only, and its data are written as text,
# so an id in an alert cannot run as markup.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-cache",
}


# The page is public (it is the repository's file, and a browser cannot send a key to open it);
# every figure it shows comes from a route that needs a key, sent from the key typed into it.
@router.get("/", response_class=FileResponse, openapi_extra=access(Access.PUBLIC))
async def page() -> FileResponse:
    """The live dashboard (HTML)."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)


@router.get("/v1/dashboard", openapi_extra=access(Access.ANY_KEY))
async def dashboard(runtime: ReadyRuntimeDep) -> DashboardResponse:
    """Score distribution, alert rate, and each serving model's rolling quality over time."""
    snapshot = runtime.dashboard()
    # Taken in the same turn of the event loop as the snapshot: no promotion falls between.
    challengers = runtime.model_statuses()[1:]
    champion_history = [(point.at, point.rolling_average_precision) for point in snapshot.quality]
    return DashboardResponse(
        at=snapshot.at,
        transactions_scored=snapshot.transactions_scored,
        score_distribution=ScoreDistribution(
            scores=snapshot.scores,
            threshold=snapshot.threshold,
            bins=[
                ScoreBinResponse(
                    lower=b.lower, upper=b.upper, count=b.count, above_threshold=b.above_threshold
                )
                for b in snapshot.histogram
            ],
            above_threshold=sum(b.above_threshold for b in snapshot.histogram),
        ),
        alert_rate=AlertRateResponse(
            per_minute=snapshot.alert_rate.per_minute,
            observed_minutes=snapshot.alert_rate.observed_minutes,
            total=snapshot.alerts_raised,
            minutes=[
                AlertMinute(start=m.start, alerts=m.alerts) for m in snapshot.alert_rate.minutes
            ],
        ),
        models=[
            _model(snapshot.model, champion_history),
            *(
                _model(status, challenger_history(snapshot.quality, status.name))
                for status in challengers
            ),
        ],
    )


def _model(status: ModelStatus, history: Iterable[tuple[datetime, float]]) -> DashboardModel:
    return DashboardModel(
        name=status.name,
        version=status.version,
        role=status.role,
        learner=status.learner,
        labels_learned=status.labels_learned,
        matured_labels=status.matured_labels,
        rolling_average_precision=finite_or_none(status.rolling_average_precision),
        history=[
            QualitySample(at=at, rolling_average_precision=finite_or_none(value))
            for at, value in history
        ],
    )
