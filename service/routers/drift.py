"""Drift alarms that need no label: the latest day's features and scores against a reference."""

from __future__ import annotations

from fastapi import APIRouter

from service.access import Access, GuardedRoute, access
from service.deps import ReadyRuntimeDep, SettingsDep
from service.drift_responses import DriftResponse

router = APIRouter(tags=["drift"], route_class=GuardedRoute)


@router.get("/v1/drift", openapi_extra=access(Access.ANY_KEY))
async def drift(runtime: ReadyRuntimeDep, settings: SettingsDep) -> DriftResponse:
    """Each watched feature's and the score's PSI, the most surprising cells of binned
    features, the novel card-days, and whether the alarm is on, for the latest day against
    its reference window.

    ``async`` on purpose: the report is read from the runtime, which only the event loop writes.
    """
    if not settings.drift_watch:
        return DriftResponse.of(runtime.drift_report(), None)
    return DriftResponse.of(
        runtime.drift_report(), settings.drift_alarm_surprise, settings.drift_novelty_surprise
    )
