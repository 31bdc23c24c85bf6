"""Labels: the verdicts the learner learns from, days after the scores."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from models.schemas import Label
from service.bodies import one_or_many
from service.deps import ReadyRuntimeDep, SettingsDep
from service.responses import LabelsResponse

router = APIRouter(prefix="/v1/labels", tags=["labels"])


@router.post("")
async def post_labels(
    body: Annotated[Any, Body(description="A label, or an array of them")],
    runtime: ReadyRuntimeDep,
    settings: SettingsDep,
) -> LabelsResponse:
    """Learn from labels; unknown or expired transaction ids are reported, not fatal."""
    outcome = runtime.learn(one_or_many(Label, body, settings.max_batch))
    return LabelsResponse(
        learned=outcome.learned,
        corrected=outcome.corrected,
        repeated=outcome.repeated,
        unknown=outcome.unknown,
    )
