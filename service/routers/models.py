"""The live model(s): version, what they learned and how good they are on matured labels."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import ReadyRuntimeDep
from service.responses import ModelResponse, ModelsResponse, finite_or_none

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("")
async def list_models(runtime: ReadyRuntimeDep) -> ModelsResponse:
    """The champion, with its rolling AP over the last matured labels."""
    status = runtime.model_status()
    return ModelsResponse(
        models=[
            ModelResponse(
                name=status.name,
                version=status.version,
                params=status.params,
                labels_learned=status.labels_learned,
                frauds_learned=status.frauds_learned,
                matured_labels=status.matured_labels,
                rolling_average_precision=finite_or_none(status.rolling_average_precision),
            )
        ]
    )
