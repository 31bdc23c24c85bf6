"""Labels: the verdicts the learner learns from, days after the scores."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response, status

from models.schemas import Label
from service.access import Access, GuardedRoute, access
from service.bodies import one_or_many
from service.deps import ReadyRuntimeDep, SettingsDep
from service.responses import Accepted, LabelsResponse

router = APIRouter(prefix="/v1/labels", tags=["labels"], route_class=GuardedRoute)


@router.post(
    "",
    openapi_extra=access(Access.LABEL),
    responses={
        status.HTTP_202_ACCEPTED: {
            "model": Accepted,
            "description": "Distributed mode: handed to the learner through the labels topic",
        }
    },
)
async def post_labels(
    body: Annotated[Any, Body(description="A label, or an array of them")],
    runtime: ReadyRuntimeDep,
    settings: SettingsDep,
    response: Response,
) -> LabelsResponse | Accepted:
    """Learn from labels; unknown or expired transaction ids are reported, not fatal.

    The embedded service learns at once and says how each label went; in distributed mode the
    labels go to the learner through the labels topic, and the answer is 202 once the broker
    holds them.
    """
    labels = one_or_many(Label, body, settings.max_batch, runtime.input_context())
    outcome = await runtime.take_labels(labels)
    if outcome is None:
        response.status_code = status.HTTP_202_ACCEPTED
        return Accepted(accepted=len(labels), backlog=runtime.backlog)
    return LabelsResponse(
        learned=outcome.learned,
        corrected=outcome.corrected,
        repeated=outcome.repeated,
        unknown=outcome.unknown,
        refused=outcome.refused,
        statuses=[status.value for status in outcome.statuses],
    )
