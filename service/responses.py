"""Response bodies of the API (the contract models travel inside them unchanged)."""

from __future__ import annotations

import orjson
from fastapi import Response
from pydantic import BaseModel, Field

from models.schemas import Score
from models.scored import Scored


class ScoreResponse(Score):
    """A `Score` with the alert threshold it was decided against and the time it took."""

    threshold: float
    latency_ms: float = Field(description="Server-side time to validate, score and decide")


class BatchScoreResponse(BaseModel):
    scores: list[ScoreResponse]
    latency_ms: float


class Accepted(BaseModel):
    accepted: int
    backlog: int = Field(description="Transactions waiting in the queue after these")


class LabelsResponse(BaseModel):
    learned: int
    corrected: int
    repeated: int
    unknown: list[str] = Field(description="Ids never scored here, or whose vector expired")


class ModelResponse(BaseModel):
    name: str
    version: str
    role: str = "champion"
    params: dict[str, object]
    labels_learned: int
    frauds_learned: int
    matured_labels: int
    rolling_average_precision: float | None


class ModelsResponse(BaseModel):
    models: list[ModelResponse]


class Health(BaseModel):
    status: str


def score_document(result: Scored, latency_ms: float) -> dict[str, object]:
    """A `ScoreResponse` as plain JSON data, built straight from the score.

    The hot endpoints answer with these serialised by orjson instead of validating a response
    model we built ourselves; `tests/service` pins the shape to `ScoreResponse`.
    """
    return {
        "transaction_id": result.transaction_id,
        "score": result.score,
        "model_version": result.model_version,
        "decision": result.decision.value,
        "reasons": [reason._asdict() for reason in result.reasons],
        "threshold": result.threshold,
        "latency_ms": latency_ms,
    }


def json_response(document: object) -> Response:
    return Response(orjson.dumps(document), media_type="application/json")
