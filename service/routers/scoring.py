"""Live scores: one transaction, or a batch, answered synchronously.

Handlers are ``async`` on purpose: scoring is a few microseconds of river on the event loop,
and one thread keeps the learner and the feature state single-writer.
"""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError

from models.schemas import Transaction
from service.deps import ReadyRuntimeDep, SettingsDep
from service.responses import BatchScoreResponse, ScoreResponse, score_response

router = APIRouter(prefix="/v1/score", tags=["scoring"])


@router.post("")
async def score(transaction: Transaction, runtime: ReadyRuntimeDep) -> ScoreResponse:
    """Score one transaction; it also updates feature state like any transaction."""
    started = time.perf_counter()
    [result] = runtime.score([transaction])
    return score_response(result, (time.perf_counter() - started) * 1_000)


@router.post("/batch")
async def score_batch(
    transactions: list[Transaction], runtime: ReadyRuntimeDep, settings: SettingsDep
) -> BatchScoreResponse:
    """Score up to ``FRAUDSTREAM_MAX_BATCH`` transactions in order, in one call."""
    started = time.perf_counter()
    if not 0 < len(transactions) <= settings.max_batch:
        message = f"between 1 and {settings.max_batch} transactions per batch"
        raise RequestValidationError([{"loc": ("body",), "msg": message, "type": "length"}])
    results = runtime.score(transactions)
    latency = (time.perf_counter() - started) * 1_000
    return BatchScoreResponse(
        scores=[score_response(result, latency) for result in results], latency_ms=latency
    )
