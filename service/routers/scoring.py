"""Live scores: one transaction, or a batch, answered synchronously.

Handlers are ``async`` on purpose: scoring is a few microseconds of river on the event loop,
and one thread keeps the learner and the feature state single-writer.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from fastapi.exceptions import RequestValidationError

from models.schemas import Transaction
from service.deps import ReadyRuntimeDep, SettingsDep
from service.responses import BatchScoreResponse, ScoreResponse, json_response, score_document

router = APIRouter(prefix="/v1/score", tags=["scoring"])


@router.post("", response_model=ScoreResponse)
async def score(transaction: Transaction, runtime: ReadyRuntimeDep) -> Response:
    """Score one transaction; it also updates feature state like any transaction."""
    started = time.perf_counter()
    [result] = runtime.score([transaction])
    return json_response(score_document(result, (time.perf_counter() - started) * 1_000))


@router.post("/batch", response_model=BatchScoreResponse)
async def score_batch(
    transactions: list[Transaction], runtime: ReadyRuntimeDep, settings: SettingsDep
) -> Response:
    """Score up to ``FRAUDSTREAM_MAX_BATCH`` transactions in order, in one call."""
    started = time.perf_counter()
    if not 0 < len(transactions) <= settings.max_batch:
        message = f"between 1 and {settings.max_batch} transactions per batch"
        raise RequestValidationError([{"loc": ("body",), "msg": message, "type": "length"}])
    results = runtime.score(transactions)
    latency = (time.perf_counter() - started) * 1_000
    scores = [score_document(result, latency) for result in results]
    return json_response({"scores": scores, "latency_ms": latency})
