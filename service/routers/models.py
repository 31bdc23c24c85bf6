"""The live model(s): version, what they learned and how good they are on matured labels."""

from __future__ import annotations

from fastapi import APIRouter

from pipelines.runtime import ModelStatus
from service.deps import ReadyRuntimeDep
from service.responses import ModelResponse, ModelsResponse, finite_or_none

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("")
async def list_models(runtime: ReadyRuntimeDep) -> ModelsResponse:
    """The champion and its shadow challengers, with their rolling quality on matured labels."""
    return ModelsResponse(models=[model_response(status) for status in runtime.model_statuses()])


def model_response(status: ModelStatus) -> ModelResponse:
    quality = status.quality
    return ModelResponse(
        name=status.name,
        version=status.version,
        role=status.role,
        learner=status.learner,
        params=status.params,
        labels_learned=status.labels_learned,
        frauds_learned=status.frauds_learned,
        matured_labels=quality.matured,
        rolling_average_precision=finite_or_none(quality.average_precision),
        rolling_card_precision_at_k=finite_or_none(quality.card_precision_at_k),
        rolling_alert_precision=finite_or_none(quality.alert_precision),
        k=quality.k,
    )
