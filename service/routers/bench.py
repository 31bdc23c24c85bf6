"""A constant-score endpoint: the bare HTTP stack, for `fraudstream bench http` to compare with.

Included only when ``FRAUDSTREAM_BENCH_ENDPOINTS`` is true. It parses and validates the same
`Transaction` body as `POST /v1/score` and answers a response of the same model, but never
touches the detector: the difference between the two is what features, scoring, the stored
vector and the alert policy cost behind HTTP.
"""

from __future__ import annotations

from fastapi import APIRouter

from models.schemas import Decision, Transaction
from service.responses import ScoreResponse

router = APIRouter(prefix="/v1/bench", tags=["bench"])

CONSTANT_SCORE = 0.0
CONSTANT_VERSION = "constant"


@router.post("/constant")
async def constant(transaction: Transaction) -> ScoreResponse:
    """The same body and response model as `POST /v1/score`, with a fixed score."""
    return ScoreResponse(
        transaction_id=transaction.transaction_id,
        score=CONSTANT_SCORE,
        model_version=CONSTANT_VERSION,
        decision=Decision.PASS,
        threshold=1.0,
        latency_ms=0.0,
    )
