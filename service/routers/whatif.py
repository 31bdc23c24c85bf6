"""What-if for the alert budget: each threshold's and card budget's figures over the offline
store's matured days, for a team to pick its operating point from data.

Read from the offline store of this process's data directory: the embedded service's own, or in
distributed mode the learner's when the API shares its data directory (else the answer holds
no rows). The store is read off the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query

from pipelines.retrain.matured_rows import what_if
from service.access import Access, GuardedRoute, access
from service.deps import ReadyRuntimeDep, SettingsDep
from service.responses import WhatIfResponse
from service.retraining import offline_store

router = APIRouter(tags=["what-if"], route_class=GuardedRoute)


@router.get("/v1/whatif", openapi_extra=access(Access.ANY_KEY))
async def operating_points(
    runtime: ReadyRuntimeDep,
    settings: SettingsDep,
    days: Annotated[int, Query(ge=1, le=365, description="Matured days to look back over")] = 28,
    challenger: Annotated[
        str | None,
        Query(
            max_length=128,
            pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$",
            description="A shadow challenger's version (GET /v1/models): its own scores over "
            "the transactions it shadowed, instead of the champion's as served",
        ),
    ] = None,
) -> WhatIfResponse:
    """Alerts a day, precision, recall and legitimate cards bothered at each threshold, and
    Card Precision and recall at each daily card budget, over the last matured days."""
    store = offline_store(settings, ())
    found = await asyncio.to_thread(
        what_if, store, days, settings.label_delay, challenger=challenger
    )
    # The threshold in force: it follows the scores when an alert budget is set.
    return WhatIfResponse.of(found, runtime.alert_threshold(), challenger)
